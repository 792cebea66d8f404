#!/usr/bin/env bash
# A local single-node Apache Kafka (KRaft combined mode, no ZooKeeper, no
# Docker) for Driftline's Kafka event bus (common/bus/kafka.ts), the Kafka
# sample store (common/samples/kafka-store.ts) and tests/external/kafka.test.ts.
#
# Usage: scripts/services/kafka.sh start|stop|status|restart|jars DIR
#
#   start    resolves org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime
#            dependencies from Maven Central with `mvn dependency:copy-dependencies`
#            (a generated pom under .services/kafka/, a local Maven repository
#            under .services/cache/m2, so a second run downloads nothing), writes
#            server.properties (broker+controller in one JVM, node.id 1) and a
#            log4j config, formats the storage once with a random cluster id and
#            the SCRAM users, then runs `java kafka.Kafka server.properties` in the
#            background, waits until the broker answers a Kafka client (kafkajs
#            from node_modules, as admin: metadata + describeCluster), and creates
#            the Driftline topics and per-service ACLs
#            (scripts/services/kafka-provision.ts). Starting a running broker is a no-op.
#
# Security (docs/kafka-security.md): the client listener is SASL_PLAINTEXT with
# SCRAM-SHA-512 only; the controller listener SASL_PLAINTEXT with PLAIN (KRaft
# controllers cannot use SCRAM); StandardAuthorizer with
# allow.everyone.if.no.acl.found=false, super users broker, controller and admin.
# SCRAM users: broker (inter-broker), admin (tests, tools), edge, retrainer,
# bridge, dashboard. Passwords: KAFKA_<USER>_PASSWORD, else
# "${KAFKA_DEV_PASSWORD:-driftline-dev}-<user>" — development defaults for this
# loopback-only broker, never for a real cluster. Changing a password (or the
# user list) reformats the local data on the next start.
#   stop     TERM, wait up to 30 s (controlled shutdown), then KILL.
#   status   prints running/stopped; exit code 0 when running, 1 otherwise.
#   jars DIR resolves the same jars into DIR (nothing started): the Kafka image of
#            scripts/images/build.sh is built from them, so the cluster runs what the tests run.
#
# Environment:
#   KAFKA_VERSION            Kafka release from Maven Central (default 4.4.0; see README.md)
#   KAFKA_PORT               PLAINTEXT listener port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT    KRaft controller listener port on 127.0.0.1 (default 9093)
#   KAFKA_START_TIMEOUT      seconds to wait until healthy (default 90)
#   KAFKA_HEAP_OPTS          JVM heap flags (default -Xms256m -Xmx512m)
#   KAFKA_M2_REPO            Maven local repository (default .services/cache/m2)
#   KAFKA_LOG4J_VERSION      log4j2 slf4j binding added for Kafka 4.x (default 2.25.5, as Kafka 4.4.0)
#   KAFKA_DEV_PASSWORD       prefix of the development passwords (default driftline-dev)
#   KAFKA_<USER>_PASSWORD    password of one user (BROKER, CONTROLLER, ADMIN, EDGE, RETRAINER, BRIDGE, DASHBOARD)
#   KAFKA_TOPIC_PREFIX       topic prefix the provisioned topics and ACLs use (default none)
#
# Files (all under the git-ignored .services/):
#   .services/kafka/pom-<version>.xml   generated pom (kafka_2.13 + the slf4j→log4j binding)
#   .services/kafka/libs-<version>/     the jars (marker .complete when the copy finished)
#   .services/kafka/config/             server.properties (mode 600: holds the JAAS passwords), log4j config
#   .services/kafka/data/               KRaft metadata + topic logs (formatted once)
#   .services/kafka/kafka.pid           pid of the JVM (leader of its own process group)
#   .services/logs/kafka.log            broker log (log4j console appender + JVM output)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
base="$root/.services/kafka"
version="${KAFKA_VERSION:-4.4.0}"
scala="2.13"
m2="${KAFKA_M2_REPO:-$root/.services/cache/m2}"
libs="$base/libs-$version"
conf="$base/config"
data="$base/data"
pid_file="$base/kafka.pid"
log_dir="$root/.services/logs"
log="$log_dir/kafka.log"
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
timeout_s="${KAFKA_START_TIMEOUT:-90}"
heap="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
major="${version%%.*}"

log_msg() { echo "kafka.sh: $*"; }

# SCRAM users created at format time; the services' users get ACLs from kafka-provision.ts.
scram_users=(broker admin edge retrainer bridge dashboard)
password_for() {
  local var="KAFKA_${1^^}_PASSWORD"
  if [ -n "${!var:-}" ]; then echo "${!var}"; else echo "${KAFKA_DEV_PASSWORD:-driftline-dev}-$1"; fi
}
# Fingerprint of the users and passwords the data was formatted with (SCRAM credentials live in the metadata log).
security_fingerprint() {
  local u out=""
  for u in "${scram_users[@]}" controller; do out+="$u=$(password_for "$u");"; done
  printf '%s' "$out" | sha256sum | cut -c1-64
}
# shellcheck source=lib.sh
. "$root/scripts/services/lib.sh"


port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A real client round trip: ApiVersions + Metadata + DescribeCluster through
# kafkajs (the client Driftline uses). Without node/kafkajs, the log line the
# broker writes once it serves requests is taken instead.
client_ok() {
  if command -v node >/dev/null 2>&1 && [ -d "$root/node_modules/kafkajs" ]; then
    (cd "$root" && KAFKA_CHECK_BROKER="127.0.0.1:$port" KAFKA_CHECK_PASSWORD="$(password_for admin)" timeout 20 node --input-type=module -e '
      import { Kafka, logLevel } from "kafkajs";
      const kafka = new Kafka({ clientId: "kafka-sh-health", brokers: [process.env.KAFKA_CHECK_BROKER], sasl: { mechanism: "scram-sha-512", username: "admin", password: process.env.KAFKA_CHECK_PASSWORD }, logLevel: logLevel.NOTHING, connectionTimeout: 3000, retry: { retries: 0 } });
      const admin = kafka.admin();
      try {
        await admin.connect();
        const c = await admin.describeCluster();
        if (!c.brokers.length) throw new Error("no brokers");
        await admin.listTopics();
        await admin.disconnect();
        process.exit(0);
      } catch (e) { process.exit(1); }
    ' >/dev/null 2>&1)
  else
    grep -q "Kafka Server started" "$log" 2>/dev/null
  fi
}

healthy() {
  port_open "$port" && client_ok
}

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}

ensure_tools() {
  local missing=()
  command -v "$(java_bin)" >/dev/null 2>&1 || missing+=("java (17+; Debian: openjdk-17-jre-headless)")
  command -v mvn >/dev/null 2>&1 || missing+=("mvn (Debian: maven)")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "kafka.sh: missing: ${missing[*]}" >&2
    exit 1
  fi
}

write_pom() {
  # The broker logs through slf4j 1.7; the binding the Kafka distribution ships
  # is not a dependency of kafka_2.13, so it is added here: log4j2 for Kafka 4,
  # reload4j (log4j 1.x) for Kafka 3.
  local binding
  if [ "$major" -ge 4 ]; then
    binding="<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${KAFKA_LOG4J_VERSION:-2.25.5}</version></dependency>"
  else
    binding="<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>"
  fi
  cat >"$base/pom-$version.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services/kafka.sh: the jars of a Kafka $version broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>driftline.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$scala</artifactId><version>$version</version></dependency>
    $binding
  </dependencies>
</project>
EOF
}

ensure_jars() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  ensure_tools
  mkdir -p "$base" "$m2"
  write_pom
  log_msg "resolving org.apache.kafka:kafka_$scala:$version and its runtime dependencies (Maven repo $m2)"
  rm -rf "$libs.tmp"
  if ! mvn -B -q -f "$base/pom-$version.xml" -Dmaven.repo.local="$m2" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp" >"$base/mvn.log" 2>&1; then
    echo "kafka.sh: maven could not resolve Kafka $version; last lines of $base/mvn.log:" >&2
    tail -n 30 "$base/mvn.log" >&2 || true
    exit 1
  fi
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
  touch "$libs/.complete"
  log_msg "$(find "$libs" -name '*.jar' | wc -l) jars in $libs"
}

write_config() {
  mkdir -p "$conf" "$data" "$log_dir"
  chmod 700 "$conf"
  local broker_pw controller_pw
  broker_pw="$(password_for broker)"
  controller_pw="$(password_for controller)"
  (umask 077 && cat >"$conf/server.properties" <<EOF
# Generated by scripts/services/kafka.sh: single node, KRaft combined mode,
# SASL/SCRAM for clients, PLAIN for the controller, ACLs (docs/kafka-security.md).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=SASL_PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=SASL_PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
# Clients and the broker itself: SCRAM-SHA-512 (users stored in the metadata log at format time).
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$broker_pw";
# KRaft controllers cannot authenticate with SCRAM (its credentials live in the metadata they serve): PLAIN.
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_pw" user_controller="$controller_pw";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;User:controller;User:admin
log.dirs=$data/logs
metadata.log.dir=$data/metadata
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests create and delete groups quickly: rebalance without the 3 s wait.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=168
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
num.network.threads=2
num.io.threads=4
EOF
  )
  # Log to the console; `start` sends stdout/stderr to .services/logs/kafka.log.
  cat >"$conf/log4j2.properties" <<'EOF'
status = warn
name = driftline-kafka
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
# Per-partition chatter (every topic a test run creates or deletes logs dozens of lines).
logger.partition.name = kafka.cluster.Partition
logger.partition.level = WARN
logger.storage.name = org.apache.kafka.storage.internals.log
logger.storage.level = WARN
logger.replication.name = org.apache.kafka.controller.ReplicationControlManager
logger.replication.level = WARN
logger.configcontrol.name = org.apache.kafka.controller.ConfigurationControlManager
logger.configcontrol.level = WARN
logger.dynconfig.name = kafka.server.metadata.DynamicConfigPublisher
logger.dynconfig.level = WARN
logger.groupmeta.name = org.apache.kafka.coordinator.group.GroupMetadataManager
logger.groupmeta.level = WARN
EOF
  cat >"$conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.kafka.cluster.Partition=WARN
log4j.logger.kafka.log=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.org.apache.kafka.controller.ReplicationControlManager=WARN
log4j.logger.org.apache.kafka.controller.ConfigurationControlManager=WARN
log4j.logger.kafka.server.metadata.DynamicConfigPublisher=WARN
log4j.logger.kafka.coordinator.group.GroupMetadataManager=WARN
log4j.logger.org.apache.kafka.coordinator.group.GroupMetadataManager=WARN
EOF
}

java_opts() {
  # shellcheck disable=SC2206
  local opts=($heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true -Dkafka.logs.dir="$log_dir")
  if [ "$major" -ge 4 ]; then
    # No log4j shutdown hook: the console appender flushes every line, and the
    # hook only warns when Kafka's own shutdown hook logs after it ran.
    opts+=(-Dlog4j2.configurationFile="$conf/log4j2.properties" -Dlog4j2.shutdownHookEnabled=false)
  else
    opts+=(-Dlog4j.configuration="file:$conf/log4j.properties")
  fi
  printf '%s\n' "${opts[@]}"
}

format_storage() {
  local marker="$data/.driftline-kafka-version"
  local sec_marker="$data/.driftline-kafka-security"
  local fingerprint
  fingerprint="$(security_fingerprint)"
  if [ -f "$data/metadata/meta.properties" ] && [ -f "$marker" ]; then
    local had
    had="$(cat "$marker")"
    # Data written by another major release is not guaranteed readable (and a
    # 4.x log cannot be downgraded): it is local test data, start afresh.
    # Likewise data formatted without these SCRAM users (or with other passwords).
    if [ "${had%%.*}" = "$major" ] && [ "$(cat "$sec_marker" 2>/dev/null)" = "$fingerprint" ]; then return 0; fi
    if [ "${had%%.*}" = "$major" ]; then
      log_msg "data in $data was formatted without these SCRAM users/passwords; reformatting (local test data)"
    else
      log_msg "data in $data was formatted by Kafka $had; reformatting for $version"
    fi
  fi
  rm -rf "$data"
  mkdir -p "$data"
  local java opts cluster_id
  java="$(java_bin)"
  mapfile -t opts < <(java_opts)
  cluster_id="$("$java" "${opts[@]}" -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>>"$log" | tail -n 1)"
  if [[ ! "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]]; then
    echo "kafka.sh: StorageTool random-uuid failed (got '$cluster_id'); see $log" >&2
    exit 1
  fi
  log_msg "formatting $data (cluster id $cluster_id, SCRAM users ${scram_users[*]})"
  local scram=() u
  for u in "${scram_users[@]}"; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(password_for "$u")]")
  done
  if ! "$java" "${opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$conf/server.properties" "${scram[@]}" >>"$log" 2>&1; then
    echo "kafka.sh: formatting the storage failed; last log lines:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
  fi
  echo "$version" >"$marker"
  echo "$fingerprint" >"$sec_marker"
}

# Topics and per-service ACLs (idempotent), as the admin super user.
provision() {
  if ! command -v node >/dev/null 2>&1 || [ ! -d "$root/node_modules/tsx" ]; then
    echo "kafka.sh: node_modules missing: topics and ACLs not provisioned (run npm ci, then scripts/services/kafka.sh start)" >&2
    return 1
  fi
  if ! (cd "$root" && KAFKA_PORT="$port" KAFKA_ADMIN_PASSWORD="$(password_for admin)" \
      timeout 60 node --import tsx scripts/services/kafka-provision.ts); then
    echo "kafka.sh: provisioning topics and ACLs failed" >&2
    return 1
  fi
}

do_status() {
  local pid
  if pid="$(read_pid)" && healthy; then
    echo "kafka: running (pid $pid, 127.0.0.1:$port, Kafka $(cat "$data/.driftline-kafka-version" 2>/dev/null || echo '?'))"
    return 0
  fi
  if healthy; then
    echo "kafka: running (127.0.0.1:$port, not started by this script: no pid file)"
    return 0
  fi
  if pid="$(read_pid)"; then
    echo "kafka: starting or unhealthy (pid $pid, 127.0.0.1:$port does not answer)"
    return 1
  fi
  echo "kafka: stopped"
  return 1
}

do_start() {
  if healthy; then
    log_msg "already running at 127.0.0.1:$port"
    provision
    return 0
  fi
  if read_pid >/dev/null; then
    log_msg "a previous broker (pid $(read_pid)) is not healthy; stopping it first"
    do_stop
  fi
  if port_open "$port" || port_open "$cport"; then
    echo "kafka.sh: port $port or $cport on 127.0.0.1 is taken by another process; set KAFKA_PORT / KAFKA_CONTROLLER_PORT" >&2
    exit 1
  fi
  ensure_tools
  ensure_jars
  write_config
  format_storage
  local java opts
  java="$(java_bin)"
  mapfile -t opts < <(java_opts)
  # Keep one previous log once the current one passes 20 MB.
  if [ -f "$log" ] && [ "$(wc -c <"$log")" -gt 20971520 ]; then mv -f "$log" "$log.1"; fi
  log_msg "starting Kafka $version on 127.0.0.1:$port (controller 127.0.0.1:$cport, log $log)"
  # setsid: the JVM leads its own process group, so `stop` can signal it by the pid we record.
  (
    cd "$base"
    nohup setsid "$java" "${opts[@]}" -cp "$libs/*" kafka.Kafka "$conf/server.properties" >>"$log" 2>&1 </dev/null &
    echo $! >"$pid_file"
  )
  local pid deadline
  pid="$(cat "$pid_file")"
  deadline=$(($(date +%s) + timeout_s))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if healthy; then
      log_msg "ready at 127.0.0.1:$port (pid $pid, Kafka $version, SASL/SCRAM-SHA-512)"
      provision
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kafka.sh: broker exited during start-up; last log lines:" >&2
      tail -n 40 "$log" >&2 || true
      rm -f "$pid_file"
      exit 1
    fi
    sleep 0.5
  done
  echo "kafka.sh: 127.0.0.1:$port did not become healthy within ${timeout_s}s; last log lines:" >&2
  tail -n 40 "$log" >&2 || true
  do_stop || true
  exit 1
}

do_stop() { stop_service 30; }

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  restart) do_stop; do_start ;;
  jars)
    libs="${2:?usage: $0 jars DIR}"
    ensure_jars
    ;;
  *)
    echo "usage: $0 start|stop|status|restart|jars DIR" >&2
    exit 2
    ;;
esac
