"""Helpers shared by the peer scripts in bench/peers/."""
import argparse
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


def serve(run_round, phases, run_profile=None):
    """--serve: the script stays up between rounds, so `smelt bench` can interleave them with its own.

    Prints {"ready": true}; then each line read on stdin names a phase, and run_round(phase) times
    one round of it and prints its JSON line; a line "profile PHASE" calls run_profile(phase)
    instead, where the script has one (it prints per-op lines, the last with "op": "(step)").
    Returns at the end of input (status 0); a phase this script was not started for, or a profile
    it cannot give, ends it with status 2.
    """
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        profiling = len(words) == 2 and words[0] == "profile" and run_profile is not None
        phase = words[-1] if words else ""
        if phase not in phases or (len(words) != 1 and not profiling):
            print(f"{sys.argv[0]}: asked for {line.strip()!r}; serving {sorted(phases)}", file=sys.stderr)
            return 2
        (run_profile if profiling else run_round)(phase)
    return 0


def int_at_least(minimum):
    """An argparse type: an integer >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


positive_int = int_at_least(1)  # a count of runs, threads or rows, a size
non_negative_int = int_at_least(0)  # a count of warm-up runs
