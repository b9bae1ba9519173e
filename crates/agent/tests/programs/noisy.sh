#!/bin/sh
# Logs on stdout before its answer, which is the last non-empty line (a blank line follows it):
# the agent must accept it. Earlier lines include a JSON object that is NOT the answer.
cat >/dev/null
kind=${HOTPATCH_KIND:-}
for arg in "$@"; do kind=$arg; done
echo "Searching for updates..."
echo '{"progress": 50}'
echo "Installing 1 update(s)"
echo "noisy.sh: $kind on stderr too" >&2
case $kind in
inventory)
    echo '{"os_build": "20348.2402", "reboot_pending": false, "installed_updates": [{"kb": "KB5037000", "installed_on": "2024-04-10"}], "available_updates": []}'
    ;;
health)
    echo '{"status": "healthy", "checks": [{"name": "noisy", "status": "healthy"}]}'
    ;;
assess)
    echo '{"outcome": "succeeded", "inventory": {"os_build": "20348.2402", "reboot_pending": false, "installed_updates": [], "available_updates": [{"kb": "KB5040007", "title": "2024-05 Hotpatch (KB5040007)", "classification": "security", "requires_reboot": false}]}}'
    ;;
*)
    echo '{"outcome": "succeeded", "rebooted": false, "reboot_pending": false}'
    ;;
esac
echo ""
