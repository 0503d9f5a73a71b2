"""Helpers shared by the peer scripts in bench/peers/."""
import json
import resource
import sys


def peak_rss_mb():
    """This process's peak resident set in MB (VmHWM).

    Not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec,
    so a script started by `smelt bench` would report smelt's own peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def serve(run_round, phases):
    """--serve: the script stays up between rounds, so `smelt bench` can interleave them with its own.

    Prints {"ready": true}; then each line read on stdin names a phase, and run_round(phase) times
    one round of it and prints its JSON line. Returns at the end of input (status 0); a phase this
    script was not started for ends it with status 2.
    """
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        phase = line.strip()
        if phase not in phases:
            print(f"{sys.argv[0]}: asked for phase {phase!r}; serving {sorted(phases)}", file=sys.stderr)
            return 2
        run_round(phase)
    return 0
