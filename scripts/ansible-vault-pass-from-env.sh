#!/usr/bin/env bash
# An Ansible vault password "file" that is a script: Ansible runs an executable
# ANSIBLE_VAULT_PASSWORD_FILE / --vault-password-file and reads the password from
# its output. This one prints $ANSIBLE_VAULT_PASSWORD, so the password can come from
# the environment (a CI secret) without ever being written to disk or the repository.
#   ANSIBLE_VAULT_PASSWORD=… ANSIBLE_VAULT_PASSWORD_FILE=scripts/ansible-vault-pass-from-env.sh ansible-playbook …
# (`make deploy` sets this up when only ANSIBLE_VAULT_PASSWORD is given.)
set -euo pipefail
if [ -z "${ANSIBLE_VAULT_PASSWORD:-}" ]; then
  echo "ansible-vault-pass-from-env.sh: ANSIBLE_VAULT_PASSWORD is not set" >&2
  exit 1
fi
printf '%s\n' "$ANSIBLE_VAULT_PASSWORD"
