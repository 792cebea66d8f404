#!/usr/bin/env bash
# Starts the Elasticsearch node of the driftline/elasticsearch image (the launcher of
# scripts/services/elasticsearch.sh). Env: ES_HEAP (default 512m), ES_JAVA_OPTS (extra JVM flags).
set -euo pipefail
home=/opt/elasticsearch
heap="${ES_HEAP:-512m}"
mkdir -p /tmp/elasticsearch-logs /tmp/elasticsearch-tmp
echo "es-entrypoint: starting Elasticsearch ${ELASTICSEARCH_VERSION:-?} (heap $heap, data /var/lib/elasticsearch)"
# shellcheck disable=SC2086
exec java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
  -Djava.io.tmpdir=/tmp/elasticsearch-tmp -Dfile.encoding=UTF-8 -Djava.awt.headless=true \
  -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
  -Des.path.home="$home" \
  --enable-native-access=ALL-UNNAMED,org.apache.lucene.core \
  ${ES_JAVA_OPTS:-} \
  --module-path "$home/lib" --add-modules ALL-MODULE-PATH \
  -cp "$home/launcher" DriftlineEsNode
