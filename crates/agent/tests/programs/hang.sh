#!/bin/sh
# Never answers, and leaves a child behind: the agent must kill the whole process group at the
# deadline. The child's pid is in $HOTPATCH_STATE_DIR/hang-child.pid (its own in hang.pid) so a
# test can check both are gone.
: "${HOTPATCH_STATE_DIR:?HOTPATCH_STATE_DIR is not set}"
mkdir -p "$HOTPATCH_STATE_DIR"
sleep 600 &
echo $! >"$HOTPATCH_STATE_DIR/hang-child.pid"
echo $$ >"$HOTPATCH_STATE_DIR/hang.pid"
echo "hang.sh: working (pid $$, child $!), this will take a while" >&2
cat >/dev/null
sleep 600
