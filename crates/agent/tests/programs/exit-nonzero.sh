#!/bin/sh
# Prints a valid "succeeded" answer but exits 3: a non-zero exit status fails the job anyway.
cat >/dev/null
echo "exit-nonzero.sh: answering, then exiting 3" >&2
echo '{"outcome": "succeeded", "rebooted": false, "reboot_pending": false}'
exit 3
