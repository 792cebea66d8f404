#!/usr/bin/env bash
# Starts a single-node Kafka (KRaft combined mode) in the driftline/kafka image: writes
# server.properties from the environment, formats the data directory once, then execs the JVM (so
# SIGTERM from tini reaches the broker: controlled shutdown).
#
# Environment:
#   KAFKA_ADVERTISED_HOST   host name clients use (default: the pod's host name)
#   KAFKA_PORT              client listener port (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port, loopback-only use (default 9093)
#   KAFKA_DATA_DIR          data directory (default /var/lib/kafka/data)
#   KAFKA_CONFIG_DIR        where the generated configuration goes (default /tmp/kafka-config)
#   KAFKA_HEAP_OPTS         JVM heap (default -Xms256m -Xmx512m)
#   KAFKA_NUM_PARTITIONS    default partitions of auto-created topics (default 3)
#   KAFKA_AUTO_CREATE_TOPICS  auto.create.topics.enable (default false: the services create their topics)
#   KAFKA_SASL              none (PLAINTEXT) or scram (SASL_PLAINTEXT + SCRAM-SHA-512 for clients, PLAIN on
#                           the controller listener, StandardAuthorizer, no ACL = no access; as
#                           scripts/services/kafka.sh and docs/kafka-security.md) — default none
#   KAFKA_SCRAM_USERS       with scram: the SCRAM users created when the storage is formatted
#                           (default "broker admin edge retrainer bridge dashboard")
#   KAFKA_<USER>_PASSWORD   with scram: each user's password (required; BROKER, CONTROLLER, ADMIN, ...)
#   KAFKA_SUPER_USERS       with scram: default "User:broker;User:controller;User:admin"
# SCRAM users are created only when the data directory is formatted (the KRaft way). To change a
# password later: kafka-configs --alter --entity-type users --entity-name USER --add-config
# 'SCRAM-SHA-512=[password=...]' as admin (docs/kafka-security.md).
set -euo pipefail

libs=/opt/kafka/libs
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
data="${KAFKA_DATA_DIR:-/var/lib/kafka/data}"
conf="${KAFKA_CONFIG_DIR:-/tmp/kafka-config}"
host="${KAFKA_ADVERTISED_HOST:-$(hostname)}"
sasl="${KAFKA_SASL:-none}"
heap="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
users="${KAFKA_SCRAM_USERS:-broker admin edge retrainer bridge dashboard}"

say() { echo "kafka-entrypoint: $*"; }
die() { echo "kafka-entrypoint: ERROR: $*" >&2; exit 1; }
password_for() {
  local var="KAFKA_${1^^}_PASSWORD"
  [ -n "${!var:-}" ] || die "$var is not set (KAFKA_SASL=scram needs a password for every user)"
  printf '%s' "${!var}"
}

mkdir -p "$conf" "$data"
chmod 700 "$conf"
umask 077
{
  echo "# Written by kafka-entrypoint.sh at every start."
  echo "process.roles=broker,controller"
  echo "node.id=1"
  echo "controller.quorum.voters=1@127.0.0.1:$cport"
  echo "controller.listener.names=CONTROLLER"
  echo "log.dirs=$data/logs"
  echo "metadata.log.dir=$data/metadata"
  echo "num.partitions=${KAFKA_NUM_PARTITIONS:-3}"
  echo "default.replication.factor=1"
  echo "min.insync.replicas=1"
  echo "offsets.topic.replication.factor=1"
  echo "offsets.topic.num.partitions=3"
  echo "transaction.state.log.replication.factor=1"
  echo "transaction.state.log.min.isr=1"
  echo "share.coordinator.state.topic.replication.factor=1"
  echo "share.coordinator.state.topic.min.isr=1"
  echo "group.initial.rebalance.delay.ms=${KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS:-0}"
  echo "auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-false}"
  echo "delete.topic.enable=true"
  echo "log.retention.hours=${KAFKA_LOG_RETENTION_HOURS:-168}"
  echo "log.segment.bytes=67108864"
  echo "num.network.threads=2"
  echo "num.io.threads=4"
  if [ "$sasl" = scram ]; then
    cpw="$(password_for controller)"
    bpw="$(password_for broker)"
    echo "listeners=SASL_PLAINTEXT://0.0.0.0:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=SASL_PLAINTEXT://$host:$port"
    echo "inter.broker.listener.name=SASL_PLAINTEXT"
    echo "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    echo "sasl.enabled.mechanisms=SCRAM-SHA-512"
    echo "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512"
    echo "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$bpw\";"
    echo "sasl.mechanism.controller.protocol=PLAIN"
    echo "listener.name.controller.sasl.enabled.mechanisms=PLAIN"
    echo "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"controller\" password=\"$cpw\" user_controller=\"$cpw\";"
    echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    echo "allow.everyone.if.no.acl.found=false"
    echo "super.users=${KAFKA_SUPER_USERS:-User:broker;User:controller;User:admin}"
  elif [ "$sasl" = none ]; then
    echo "listeners=PLAINTEXT://0.0.0.0:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=PLAINTEXT://$host:$port"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  else
    die "KAFKA_SASL=$sasl: expected none or scram"
  fi
} >"$conf/server.properties"

# shellcheck disable=SC2206
java_opts=($heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  -Djava.io.tmpdir=/tmp -Dkafka.logs.dir=/tmp
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -Dlog4j2.shutdownHookEnabled=false)

# Format the storage once (KRaft). SCRAM users are created now: their credentials live in the metadata
# log, so the broker can authenticate its own inter-broker connection at first start.
if [ ! -f "$data/metadata/meta.properties" ]; then
  cluster_id="${KAFKA_CLUSTER_ID:-$(java "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool random-uuid | tail -n 1)}"
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid gave '$cluster_id'"
  scram=()
  if [ "$sasl" = scram ]; then
    for u in $users; do
      password_for "$u" >/dev/null # fails here, not in the substitution below
      scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(password_for "$u")]")
    done
  fi
  say "formatting $data (cluster id $cluster_id${scram:+, SCRAM users $users})"
  java "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$conf/server.properties" "${scram[@]}"
fi

say "starting Kafka ${KAFKA_VERSION:-?} (KRaft single node, listener $sasl on :$port, advertised as $host:$port)"
exec java "${java_opts[@]}" -cp "$libs/*" kafka.Kafka "$conf/server.properties"
