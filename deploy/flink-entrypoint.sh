#!/bin/sh
# Runs the pip-installed Flink distribution (site-packages/pyflink) in the foreground.
set -e
FLINK_HOME=$(python3 -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')
export FLINK_HOME FLINK_CONF_DIR=${FLINK_CONF_DIR:-/opt/livefit/deploy/flink-conf}
case "$1" in
  jobmanager)  exec "$FLINK_HOME/bin/jobmanager.sh" start-foreground ;;
  taskmanager) exec "$FLINK_HOME/bin/taskmanager.sh" start-foreground ;;
  flink)       shift; exec "$FLINK_HOME/bin/flink" "$@" ;;
  *)           exec "$@" ;;
esac
