#!/usr/bin/env bash
# A local single-node Elasticsearch for Driftline's log shipper
# (common/logging/elasticsearch-transport.ts and tests/external/elasticsearch.test.ts).
#
# Usage: scripts/services/elasticsearch.sh start|stop|status|restart|assemble DIR
#
# There is no Elasticsearch download here (no Debian package, no elastic.co), so
# the node is assembled from Maven Central: the real server jar
# org.elasticsearch:elasticsearch with its dependencies, plus the HTTP module
# org.elasticsearch.plugin:transport-netty4 (its jar carries the module's
# plugin-descriptor.properties). A 40-line launcher (written below, compiled
# once) builds the node the way Elasticsearch's own bootstrap does —
# InternalSettingsPreparer.prepareEnvironment, PluginsLoader, new Node(...).start()
# — minus the CLI process, the entitlement agent and the native libraries,
# which are not on Maven Central. It is a real Elasticsearch node (same REST
# layer, mappings, index templates, bulk, search; it answers with
# "x-elastic-product: Elasticsearch", so the official client's product check
# passes) with only the netty4 module: no x-pack (so no security at all, no
# license/ILM/data-stream APIs) and no `GET /` (the rest-root module is not
# published): probe it with GET /_cluster/health. See docs/elasticsearch.md.
#
#   start    assembles the node into .services/elasticsearch/home-<version> if
#            needed (mvn dependency:copy-dependencies; Maven caches the jars in
#            ~/.m2), then runs it in the background on 127.0.0.1:$ELASTICSEARCH_PORT
#            and waits until /_cluster/health is yellow or green. Starting a
#            running node is a no-op.
#   stop     TERM (the node closes cleanly), wait up to 30 s, then KILL.
#   status   running/stopped; exit code 0 when healthy, 1 otherwise.
#   assemble DIR  assembles the same node into DIR (nothing started): the Elasticsearch
#            image of scripts/images/build.sh is built from it. The launcher is compiled
#            for Java 21 (--release 21), the image's JRE.
#
# Environment:
#   ELASTICSEARCH_PORT            HTTP port (default 9200; when unset it is taken from
#                                 ELASTICSEARCH_URL if that names a 127.0.0.1/localhost port)
#   ELASTICSEARCH_TRANSPORT_PORT  node-to-node port (default HTTP port + 100)
#   ELASTICSEARCH_HEAP            JVM heap (default 512m)
#   ELASTICSEARCH_START_TIMEOUT   seconds to wait for health (default 180)
#   ELASTICSEARCH_VERSION         server version from Maven Central (default 9.5.3)
#   ES_JAVA_HOME                  a JDK 21+ (default: JAVA_HOME if 21+, else the newest
#                                 JDK 21+ under /usr/lib/jvm, e.g. temurin-25-jdk-amd64)
#
# Files (all under the git-ignored .services/):
#   .services/elasticsearch/home-<version>/  lib/ (server), modules/transport-netty4/,
#                                            launcher/, config/elasticsearch.yml
#   .services/elasticsearch/data/            indices (kept across restarts)
#   .services/elasticsearch/elasticsearch.pid
#   .services/logs/elasticsearch.log         node log (stdout/stderr of the JVM)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="${ELASTICSEARCH_VERSION:-9.5.3}"
base="$root/.services/elasticsearch"
home="$base/home-$version"
data="$base/data"
tmp_dir="$base/tmp"
log_dir="$root/.services/logs"
log="$log_dir/elasticsearch.log"
pid_file="$base/elasticsearch.pid"

port_from_url() {
  local url="${ELASTICSEARCH_URL:-}"
  if [[ "$url" =~ ^https?://(127\.0\.0\.1|localhost)(:([0-9]+))?/?$ ]]; then
    echo "${BASH_REMATCH[3]:-80}"
  fi
}

port="${ELASTICSEARCH_PORT:-$(port_from_url)}"
port="${port:-9200}"
transport_port="${ELASTICSEARCH_TRANSPORT_PORT:-$((port + 100))}"
url="http://127.0.0.1:$port"
heap="${ELASTICSEARCH_HEAP:-512m}"
timeout_s="${ELASTICSEARCH_START_TIMEOUT:-180}"

log_msg() { echo "elasticsearch.sh: $*"; }
# shellcheck source=lib.sh
. "$root/scripts/services/lib.sh"

healthy() {
  curl -fsS -m 5 "$url/_cluster/health?wait_for_status=yellow&timeout=3s" 2>/dev/null | grep -Eq '"status":"(green|yellow)"'
}


java_major() {
  # `java -version` prints e.g.: openjdk version "25.0.1" 2025-10-21 / "1.8.0_402"
  "$1/bin/java" -version 2>&1 | sed -nE '1s/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/p' | awk '{ print ($1 == 1) ? $2 : $1 }'
}

find_java() {
  local candidates=() c major
  [ -n "${ES_JAVA_HOME:-}" ] && candidates+=("$ES_JAVA_HOME")
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  while IFS= read -r c; do candidates+=("$c"); done < <(ls -d /usr/lib/jvm/*/ 2>/dev/null | sed 's:/$::' | sort -rV)
  for c in "${candidates[@]}"; do
    [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] || continue
    major="$(java_major "$c")"
    if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 21 ]; then
      echo "$c"
      return 0
    fi
  done
  echo "elasticsearch.sh: Elasticsearch $version needs a JDK 21 or newer (java and javac); none found in ES_JAVA_HOME, JAVA_HOME or /usr/lib/jvm" >&2
  return 1
}

write_pom() {
  # $1 file, $2 groupId:artifactId
  local group="${2%%:*}" artifact="${2#*:}"
  cat > "$1" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>driftline.local</groupId>
  <artifactId>elasticsearch-node-${artifact}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>${group}</groupId><artifactId>${artifact}</artifactId><version>${version}</version></dependency>
  </dependencies>
</project>
EOF
}

write_launcher() {
  cat > "$1/DriftlineEsNode.java" <<'EOF'
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

/**
 * Starts one Elasticsearch node in this JVM from ES_HOME (-Des.path.home):
 * settings from config/elasticsearch.yml, modules from modules/. Written by
 * scripts/services/elasticsearch.sh; stops cleanly on SIGTERM.
 */
public final class DriftlineEsNode {
  public static void main(String[] args) throws Exception {
    Path home = Path.of(System.getProperty("es.path.home")).toAbsolutePath();
    Settings base = Settings.builder().put("path.home", home.toString()).build();
    LogConfigurator.registerErrorListener();
    LogConfigurator.configureESLogging(); // reading elasticsearch.yml already logs
    Environment env = InternalSettingsPreparer.prepareEnvironment(base, Map.of(), home.resolve("config"), () -> "driftline-es");
    LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
    LogConfigurator.configure(env, true); // config/log4j2.properties: console only
    var modules = PluginsLoader.loadModulesBundles(env.modulesDir(), false);
    var loader = PluginsLoader.createPluginsLoader(modules, Set.of(), Map.of());
    Node node = new Node(env, loader);
    CountDownLatch closed = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        node.close();
        node.awaitClose(20, TimeUnit.SECONDS);
      } catch (Exception e) {
        e.printStackTrace();
      }
      closed.countDown();
    }, "driftline-es-shutdown"));
    node.start();
    System.out.println("driftline-es: node started (Elasticsearch " + org.elasticsearch.Build.current().version() + ")");
    closed.await();
  }
}
EOF
}

ensure_dist() {
  local java_home="$1"
  local marker="$home/.driftline-complete" want
  want="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -f "$home/launcher/DriftlineEsNode.class" ]; then
    return 0
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    echo "elasticsearch.sh: mvn not found (apt-get install maven); it fetches Elasticsearch $version from Maven Central" >&2
    exit 1
  fi
  local build="$base/build-$version"
  rm -rf "$build" "$home"
  mkdir -p "$build/server" "$build/netty" "$build/home/lib" "$build/home/modules/transport-netty4" "$build/home/config" "$build/home/launcher"
  log_msg "assembling Elasticsearch $version from Maven Central into $home"
  write_pom "$build/server/pom.xml" "org.elasticsearch:elasticsearch"
  write_pom "$build/netty/pom.xml" "org.elasticsearch.plugin:transport-netty4"
  local what
  for what in server:lib netty:modules/transport-netty4; do
    if ! mvn -B -Dstyle.color=never -f "$build/${what%%:*}/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$build/home/${what#*:}" >"$build/mvn-${what%%:*}.log" 2>&1; then
      echo "elasticsearch.sh: mvn could not fetch the ${what%%:*} artifacts of Elasticsearch $version from Maven Central:" >&2
      grep -E 'ERROR|BUILD' "$build/mvn-${what%%:*}.log" | head -20 >&2 || true
      exit 1
    fi
  done
  # The module's own directory holds only what the server does not already have.
  local jar
  for jar in "$build/home/modules/transport-netty4/"*.jar; do
    [ -f "$build/home/lib/$(basename "$jar")" ] && rm -f "$jar"
  done
  local module_jar="$build/home/modules/transport-netty4/transport-netty4-$version.jar"
  [ -f "$module_jar" ] || { echo "elasticsearch.sh: $module_jar missing after the download" >&2; exit 1; }
  (
    cd "$build/home/modules/transport-netty4"
    "$java_home/bin/jar" xf "$module_jar" META-INF/es-plugins/transport-netty4/plugin-descriptor.properties META-INF/es-plugins/transport-netty4/entitlement-policy.yaml
    mv META-INF/es-plugins/transport-netty4/* . && rm -rf META-INF
  )
  write_launcher "$build/home/launcher"
  "$java_home/bin/javac" -nowarn --release 21 --module-path "$build/home/lib" --add-modules ALL-MODULE-PATH -d "$build/home/launcher" "$build/home/launcher/DriftlineEsNode.java"
  mv "$build/home" "$home"
  rm -rf "$build"
  echo "$want" > "$marker"
  log_msg "assembled: $(ls "$home/lib" | wc -l) server jars, transport-netty4 module"
}

write_config() {
  cat > "$home/config/elasticsearch.yml" <<EOF
# Written by scripts/services/elasticsearch.sh at every start; edit the script, not this file.
cluster.name: driftline-local
node.name: driftline-es
path.data: $data
path.logs: $log_dir
discovery.type: single-node
network.host: 127.0.0.1
http.port: $port
transport.port: $transport_port
# A test node: full disks must not turn indices read-only, and test clean-up may use wildcards.
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  cat > "$home/config/log4j2.properties" <<'EOF'
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
EOF
}

do_status() {
  local pid
  if pid="$(read_pid)" && healthy; then
    echo "elasticsearch: running (pid $pid, $url)"
    return 0
  fi
  if healthy; then
    echo "elasticsearch: running ($url, not started by this script: no pid file)"
    return 0
  fi
  if pid="$(read_pid)"; then
    echo "elasticsearch: starting or unhealthy (pid $pid, $url/_cluster/health does not answer)"
    return 1
  fi
  echo "elasticsearch: stopped"
  return 1
}

do_start() {
  if healthy; then
    log_msg "already running at $url"
    return 0
  fi
  if read_pid >/dev/null; then
    log_msg "a previous node (pid $(read_pid)) is not healthy; stopping it first"
    do_stop
  fi
  local java_home
  java_home="$(find_java)"
  ensure_dist "$java_home"
  mkdir -p "$data" "$tmp_dir" "$log_dir"
  write_config
  log_msg "starting Elasticsearch $version on $url (java $(java_major "$java_home") from $java_home, heap $heap, log $log)"
  local started
  started=$(date +%s)
  (
    cd "$base"
    # setsid: the JVM leads its own process group, so `stop` can signal it by group.
    nohup setsid "$java_home/bin/java" \
      -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
      -Djava.io.tmpdir="$tmp_dir" -Dfile.encoding=UTF-8 -Djava.awt.headless=true \
      -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
      -Des.path.home="$home" \
      --enable-native-access=ALL-UNNAMED,org.apache.lucene.core \
      --module-path "$home/lib" --add-modules ALL-MODULE-PATH \
      -cp "$home/launcher" DriftlineEsNode \
      >>"$log" 2>&1 </dev/null &
    echo $! > "$pid_file"
  )
  local pid deadline
  pid="$(cat "$pid_file")"
  deadline=$((started + timeout_s))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if healthy; then
      log_msg "ready at $url (pid $pid, Elasticsearch $version, started in $(($(date +%s) - started)) s)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "elasticsearch.sh: the node exited during start-up; last log lines:" >&2
      tail -n 40 "$log" >&2 || true
      rm -f "$pid_file"
      exit 1
    fi
    sleep 1
  done
  echo "elasticsearch.sh: $url/_cluster/health did not answer within ${timeout_s}s; last log lines:" >&2
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
  assemble)
    home="${2:?usage: $0 assemble DIR}"
    base="$(dirname "$home")"
    ensure_dist "$(find_java)"
    ;;
  *)
    echo "usage: $0 start|stop|status|restart|assemble DIR" >&2
    exit 2
    ;;
esac
