#!/bin/sh
# Answers no JSON at all and exits 0: the agent must fail the job ("no JSON object").
cat >/dev/null
echo "garbage.sh: about to say nothing useful" >&2
echo "this is not JSON"
echo "<html><body>neither is this</body></html>"
