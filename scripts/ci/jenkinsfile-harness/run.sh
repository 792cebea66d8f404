#!/usr/bin/env bash
# Runs a declarative Jenkinsfile with the Groovy harness (JenkinsfileHarness.groovy
# beside this file; README.md says what it supports). Resolves Groovy from Maven
# Central on first use (scripts/setup/groovy.sh, cached in .services/cache/).
#
#   scripts/ci/jenkinsfile-harness/run.sh [--jenkinsfile Jenkinsfile] [--workspace DIR] [--output DIR]
#       [--file-credential ID=PATH] [--string-credential ID=VALUE] [--userpass-credential ID=USER:PASS]
#       [--param NAME=VALUE] [--branch NAME] [--build-number N] [--job NAME]
#
# Exit code: 0 SUCCESS, 1 FAILURE, 3 UNSTABLE, 4 ABORTED, 2 invalid Jenkinsfile or arguments.
# The harness is compiled once per content (groovyc into .services/cache/jenkinsfile-harness/<hash>/),
# which saves the compile on every later run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
jars="$("$root/scripts/setup/groovy.sh")"
java_bin=java
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then java_bin="$JAVA_HOME/bin/java"; fi
command -v "$java_bin" >/dev/null 2>&1 || { echo "run.sh: java (17+) not found" >&2; exit 2; }
hash="$(cat "$here/JenkinsfileHarness.groovy" <(basename "$jars") | sha256sum | cut -c1-16)"
classes="$root/.services/cache/jenkinsfile-harness/$hash"
if [ ! -f "$classes/JenkinsfileHarness.class" ]; then
  tmp="$(mktemp -d "$root/.services/cache/jenkinsfile-harness-build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  "$java_bin" -cp "$jars/*" org.codehaus.groovy.tools.FileSystemCompiler -d "$tmp" "$here/JenkinsfileHarness.groovy" >&2
  mkdir -p "$(dirname "$classes")"
  rm -rf "$classes"
  mv "$tmp" "$classes" 2>/dev/null || [ -f "$classes/JenkinsfileHarness.class" ]
  trap - EXIT
fi
exec "$java_bin" -Xss4m -Dfile.encoding=UTF-8 -cp "$jars/*:$classes" JenkinsfileHarness "$@"
