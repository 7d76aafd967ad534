import signal, threading
def _mask():
    for line in open("/proc/self/task/%d/status" % threading.get_native_id()):
        if line.startswith(("SigBlk", "SigIgn")):
            yield line.strip()
def pytest_runtest_setup(item):
    h = signal.getsignal(signal.SIGINT)
    m = list(_mask())
    if h is not signal.default_int_handler or any(int(x.split()[1], 16) & 2 for x in m):
        print(f"\nPROBE before {item.nodeid}: {h!r} {m}", flush=True)
