#!/bin/sh
# Prints a valid answer, then dies of SIGSEGV: a program killed by a signal failed, whatever it printed.
cat >/dev/null
echo '{"outcome": "succeeded"}'
echo "crash.sh: segmentation fault ahead" >&2
kill -SEGV $$
