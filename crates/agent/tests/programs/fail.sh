#!/bin/sh
# A program that could answer, and says the job failed: the agent reports a FAILED job with this error.
cat >/dev/null
echo "fail.sh: Windows Update said 0x80070643" >&2
echo '{"outcome": "failed", "error": "simulated install failure (0x80070643)", "reboot_pending": false}'
