"""Helpers shared by the peer scripts in bench/peers/."""
import resource


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
