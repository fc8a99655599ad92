#!/usr/bin/env python3
"""Scenario driver inside the edgecam test VM (Python stdlib only; the host's python3 over 9p).

Scenarios 1 and 2 run as PID 1 after the initramfs (tests/vm/init) switched to the overlay
root; scenario 3 runs as a systemd service (edgecam-vm-test.service) beside edgecam.service.
Each ends with one line `VM-RESULT: PASS|FAIL scenarioN <details>` on the serial console and
powers the guest off.
"""

import calendar
import json
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

TOKEN = "vm-test-token-0123456789abcdef"
PORT = 8080
CONSOLE = "/dev/console"
T0 = time.monotonic()


class Fail(Exception):
    """A check failed; the message is the VM-RESULT detail."""


class Seen(Exception):
    """Not there yet: what a wait_for predicate saw instead (shown if the wait times out)."""


def say(msg):
    """One line on the serial console (and stdout, the journal in scenario 3)."""
    line = f"[guest +{time.monotonic() - T0:6.1f}s] {msg}"
    print(line, flush=True)


def sh(cmd, check=True):
    """Runs a shell command; returns its stdout (stripped)."""
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Fail(f"`{cmd}` exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read().strip()


def http(method, path, body=None, token=TOKEN):
    """(status, bytes) of one request to the daemon with the bearer token."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def status():
    code, body = http("GET", "/api/status")
    if code != 200:
        raise Fail(f"GET /api/status: {code} {body[:200]!r}")
    return json.loads(body)


def stream_row(st, sid):
    for s in st["streams"]:
        if s["id"] == sid:
            return s
    raise Fail(f"stream {sid} missing from /api/status")


def stream_state(st, sid):
    return stream_row(st, sid)["state"]


def stream_is(sid, state):
    """A predicate for wait_for: true once `sid` is in `state`. While it is not, the stream's
    own state and last_error become the wait's "last seen", so a timeout says what the daemon
    reported rather than only that the wait ran out."""

    def pred():
        row = stream_row(status(), sid)
        if row["state"] == state:
            return True
        raise Seen(f"{sid} is {row['state']}, last_error: {row.get('last_error')!r}")

    return pred


def wait_for(what, pred, timeout, every=0.05):
    """Polls `pred` until it returns a true value; returns (value, seconds waited)."""
    start = time.monotonic()
    last_err = None
    while time.monotonic() - start < timeout:
        try:
            v = pred()
            if v:
                return v, time.monotonic() - start
        except (OSError, ValueError, Fail, Seen) as e:
            last_err = e
        time.sleep(every)
    raise Fail(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {last_err})")


def jpeg_size(data):
    """(width, height) from a JPEG's SOFn marker."""
    if data[:2] != b"\xff\xd8":
        raise Fail("snapshot is not a JPEG (no SOI)")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise Fail(f"JPEG marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + seg_len
    raise Fail("no SOF marker in the snapshot")


class Daemon:
    """`edgecam run` started by the driver, its log echoed to the console as `[edgecam] ...`."""

    def __init__(self, config, user=None):
        write("/tmp/edgecam.toml", config)
        out = sh("edgecam check-config /tmp/edgecam.toml", check=False)
        say(f"edgecam check-config: {out or 'ok'}")
        cmd = ["/usr/bin/edgecam", "run", "--config", "/tmp/edgecam.toml"]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.lines = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            line = line.rstrip()
            self.lines.append(line)
            print(f"[edgecam] {line}", flush=True)

    def log_has(self, *words):
        return [l for l in list(self.lines) if all(w in l for w in words)]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def web_config(extra):
    return (
        f'[web]\nlisten = "127.0.0.1:{PORT}"\nhttps_listen = "127.0.0.1:0"\n\n'
        f'[[web.tokens]]\nname = "vm-test"\ntoken = "{TOKEN}"\nrole = "admin"\n\n'
        '[ring]\nbytes_per_stream = 4194304\nslots_per_stream = 128\n\n' + extra
    )


# ---------------------------------------------------------------------------------------------
# Scenario 1: vivid as a V4L2 camera
# ---------------------------------------------------------------------------------------------
WIDTH, HEIGHT = 640, 360


def scenario1():
    sh("modprobe vivid n_devs=1")
    wait_for("/dev/video0", lambda: os.path.exists("/dev/video0"), 20)
    card = read("/sys/class/video4linux/video0/name")
    say(f"/dev/video0 is '{card}' (vivid)")
    os.makedirs("/tmp/state", exist_ok=True)
    d = Daemon(
        web_config(
            '[paths]\nstate_dir = "/tmp/state"\n\n'
            '[[streams]]\nid = "cam1"\nname = "vivid"\nkind = "v4l2"\ndevice = "/dev/video0"\n'
            f"width = {WIDTH}\nheight = {HEIGHT}\nfps = 5\ngop = 10\nbitrate_kbps = 500\n"
            "connect_timeout_ms = 20000\nstall_timeout_ms = 5000\n"
        )
    )
    try:
        _, t_live = wait_for(
            "cam1 live", stream_is("cam1", "live"), 120, every=0.1
        )
        say(f"cam1 live {t_live:.2f}s after the daemon started")
        fmt = d.log_has("format") or d.log_has("YUYV")
        say(f"negotiated: {fmt[-1] if fmt else '(no format line in the log)'}")

        def snap():
            code, body = http("GET", "/api/streams/cam1/snapshot.jpg")
            return body if code == 200 else None

        jpeg, _ = wait_for("a snapshot", snap, 60, every=0.5)
        w, h = jpeg_size(jpeg)
        say(f"snapshot.jpg: {len(jpeg)} bytes, SOF {w}x{h}")
        if (w, h) != (WIDTH, HEIGHT):
            raise Fail(f"snapshot is {w}x{h}, expected {WIDTH}x{HEIGHT}")

        # Pull the device: unbind vivid (like unplugging a USB camera; the open file handle
        # keeps the module in use), then rmmod it, then load it again.
        write("/sys/bus/platform/drivers/vivid/unbind", "vivid.0")
        say("vivid.0 unbound from its driver: /dev/video0 is gone")
        wait_for("cam1 backoff", stream_is("cam1", "backoff"), 60, 0.1)
        st = status()
        err = [s.get("last_error") for s in st["streams"] if s["id"] == "cam1"][0]
        say(f"cam1 backoff, last_error: {err}")
        wait_for("rmmod vivid", lambda: sh("rmmod vivid", check=False) == "" and
                 not os.path.exists("/sys/module/vivid"), 30, 0.5)
        say("rmmod vivid: done")
        sh("modprobe vivid n_devs=1")
        say("modprobe vivid: /dev/video0 is back")
        _, t_relive = wait_for(
            "cam1 live again", stream_is("cam1", "live"), 120, 0.1
        )
        say(f"cam1 live again {t_relive:.2f}s after modprobe")
        st = status()
        row = [s for s in st["streams"] if s["id"] == "cam1"][0]
        if row["reconnects"] < 1:
            raise Fail(f"reconnects = {row['reconnects']} after the device came back")
        if not d.alive():
            raise Fail("the daemon exited")
        return (
            f"device=/dev/video0 ({card}) time_to_live={t_live:.2f}s snapshot={w}x{h} "
            f"unplug->backoff ok, modprobe->live={t_relive:.2f}s reconnects={row['reconnects']}"
        )
    finally:
        d.stop()


# ---------------------------------------------------------------------------------------------
# Scenario 2: gpio-sim lines as alarm contacts
# ---------------------------------------------------------------------------------------------
CFS = "/sys/kernel/config/gpio-sim"


class SimChip:
    """One gpio-sim chip made through configfs."""

    def __init__(self, name, label, lines, names=None):
        d = f"{CFS}/{name}"
        os.mkdir(d)
        os.mkdir(f"{d}/bank0")
        write(f"{d}/bank0/num_lines", str(lines))
        write(f"{d}/bank0/label", label)
        for off, n in (names or {}).items():
            os.mkdir(f"{d}/bank0/line{off}")
            write(f"{d}/bank0/line{off}/name", n)
        write(f"{d}/live", "1")
        self.dev = read(f"{d}/dev_name")
        self.chip = read(f"{d}/bank0/chip_name")
        self.label = label
        self.sysfs = f"/sys/devices/platform/{self.dev}/{self.chip}"

    def pull(self, line, up):
        write(f"{self.sysfs}/sim_gpio{line}/pull", "pull-up" if up else "pull-down")

    def value(self, line):
        return int(read(f"{self.sysfs}/sim_gpio{line}/value"))


DEBOUNCE_MS = 200


def log_time(line):
    """The UTC wall time (seconds) of a daemon log line `2026-11-21T18:19:58.273943Z ...`."""
    stamp = line.split()[0].rstrip("Z")
    day, clock = stamp.split("T")
    secs = calendar.timegm(time.strptime(day + " " + clock.split(".")[0], "%Y-%m-%d %H:%M:%S"))
    return secs + float("0." + clock.split(".")[1])


def scenario2():
    sh("modprobe gpio-sim")  # pulls in configfs first (modules.dep)
    if not os.path.isdir(CFS):
        sh("mount -t configfs none /sys/kernel/config")
    alarms = SimChip("alarms", "edgecam-alarms", 8, {0: "door-contact"})
    locked = SimChip("locked", "edgecam-locked", 4)
    say(f"gpio-sim: /dev/{alarms.chip} label '{alarms.label}' ({alarms.dev}), "
        f"/dev/{locked.chip} label '{locked.label}'")
    # The daemon runs as nobody: the alarm chip is opened up to it, the other stays root-only.
    os.chmod(f"/dev/{alarms.chip}", 0o666)
    os.chmod(f"/dev/{locked.chip}", 0o600)
    os.makedirs("/tmp/state", exist_ok=True)
    os.chown("/tmp/state", 65534, 65534)
    streams = "".join(
        f'[[streams]]\nid = "{c}"\nkind = "testpattern"\nwidth = 64\nheight = 64\nfps = 1\n\n'
        for c in ("cam1", "cam2", "cam3")
    )
    config = web_config(
        '[paths]\nstate_dir = "/tmp/state"\n\n' + streams
        + '[select]\ndefault = "cam1"\nmin_dwell_ms = 0\n\n'
        # NC contact: idle low, alarm when the line goes high; found by line name.
        f'[[alarms]]\nid = "door"\nstream = "cam2"\npriority = 5\n'
        f'[alarms.gpio]\nchip = "{alarms.chip}"\nline = "door-contact"\nactive = "high"\n'
        f'bias = "none"\ndebounce_ms = {DEBOUNCE_MS}\n'
        f'[alarms.output]\nchip = "{alarms.chip}"\nline = 4\nactive = "high"\n\n'
        # NO contact to ground with the pull-up: idle high, alarm when pulled low.
        f'[[alarms]]\nid = "window"\nstream = "cam3"\n'
        f'[alarms.gpio]\nchip = "{alarms.chip}"\nline = 1\nactive = "low"\n'
        f'bias = "pull-up"\ndebounce_ms = {DEBOUNCE_MS}\n\n'
        '[[alarms]]\nid = "missing"\nstream = "cam3"\n'
        '[alarms.gpio]\nchip = "gpiochip9"\nline = 0\n\n'
        '[[alarms]]\nid = "locked"\nstream = "cam3"\n'
        f'[alarms.gpio]\nchip = "{locked.chip}"\nline = 0\n'
    )
    d = Daemon(config, user=65534)
    try:
        wait_for("API up", lambda: status(), 60, 0.2)
        wait_for("2 GPIO inputs open", lambda: len(d.log_has("GPIO input open")) >= 2, 60, 0.2)
        missing, _ = wait_for(
            "missing chip reported", lambda: d.log_has("/dev/gpiochip9", "no such GPIO chip"), 30
        )
        denied, _ = wait_for(
            "permission error reported",
            lambda: d.log_has(f"/dev/{locked.chip}", "permission denied"), 30,
        )
        say(f"reported: {missing[0]}")
        say(f"reported: {denied[0]}")

        def inputs_reported():
            rows = {r["alarm"]: r for r in status().get("inputs", [])}
            want = {"door": "ok", "window": "ok", "missing": "failed", "locked": "failed"}
            return rows if all(rows.get(a, {}).get("state") == w for a, w in want.items()) else None

        rows, _ = wait_for("GPIO inputs in /api/status", inputs_reported, 30, 0.2)
        for a in ("missing", "locked"):
            say(f"/api/status inputs: {a}: {rows[a]['error']}")
        time.sleep(1)  # let the output line settle and the inputs read their first level
        if status()["active"]["stream"] != "cam1":
            raise Fail(f"active at start: {status()['active']}")
        if alarms.value(4) != 0:
            raise Fail("alarm output line 4 is driven before any alarm")

        # A bounce shorter than the debounce is ignored.
        t = time.monotonic()
        alarms.pull(0, True)
        alarms.pull(0, False)
        bounce_ms = (time.monotonic() - t) * 1000
        if bounce_ms >= DEBOUNCE_MS / 2:
            raise Fail(f"bounce took {bounce_ms:.0f} ms, too slow to test a {DEBOUNCE_MS} ms debounce")
        time.sleep(3 * DEBOUNCE_MS / 1000 + 0.5)
        st = status()
        if st["active"]["stream"] != "cam1":
            raise Fail(f"a {bounce_ms:.1f} ms bounce selected {st['active']}")
        say(f"a {bounce_ms:.1f} ms bounce on door-contact was ignored (debounce {DEBOUNCE_MS} ms)")

        # Raising the NC door line selects cam2 and drives the output line.
        t_wall = time.time()
        alarms.pull(0, True)
        _, api_s = wait_for("door selects cam2", lambda: status()["active"]["stream"] == "cam2", 30, 0.01)
        sel_ms = (log_time(d.log_has("active stream", "stream=cam2")[-1]) - t_wall) * 1000
        say(f"door raised: cam2 selected {sel_ms:.0f} ms after the line went high (daemon log), "
            f"seen in /api/status after {api_s * 1000:.0f} ms ({status()['active']['reason']})")
        wait_for("output line 4 high", lambda: alarms.value(4) == 1, 10, 0.02)
        say(f"alarm output {alarms.chip} line 4 value=1 while the door alarm is active")
        alarms.pull(0, False)
        wait_for("back to cam1", lambda: status()["active"]["stream"] == "cam1", 30, 0.02)
        wait_for("output line 4 low", lambda: alarms.value(4) == 0, 10, 0.02)
        say("door cleared: back to cam1, output line 4 value=0")

        # The active-low window contact: pulling the line low raises it.
        alarms.pull(1, False)
        wait_for("window selects cam3", lambda: status()["active"]["stream"] == "cam3", 30, 0.02)
        say(f"window pulled low: cam3 selected ({status()['active']['reason']})")
        alarms.pull(1, True)
        wait_for("back to cam1", lambda: status()["active"]["stream"] == "cam1", 30, 0.02)
        say("window released high: back to cam1")

        if not d.alive():
            raise Fail("the daemon exited")
        code, _ = http("GET", "/api/health", token=None)
        if code != 200:
            raise Fail(f"/api/health {code}")
        return (
            f"chip=/dev/{alarms.chip} label={alarms.label} alarm_to_selection={sel_ms:.0f}ms "
            f"(api {api_s * 1000:.0f}ms) "
            f"(debounce {DEBOUNCE_MS} ms included) bounce_{bounce_ms:.0f}ms_ignored "
            f"active_low+active_high ok output_line ok missing_chip+permission reported, daemon up"
        )
    finally:
        d.stop()


# ---------------------------------------------------------------------------------------------
# Scenario 3: systemd as PID 1 runs the shipped unit
# ---------------------------------------------------------------------------------------------
def show(*props):
    out = sh("systemctl show edgecam.service -p " + ",".join(props))
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


def journal(pattern):
    out = sh("journalctl -b --no-pager -o short-monotonic -u edgecam.service", check=False)
    return [l for l in out.splitlines() if pattern in l]


def scenario3():
    say("systemd " + sh("systemctl --version | head -n 1"))
    _, t = wait_for("edgecam.service active", lambda: show("ActiveState")["ActiveState"] == "active", 180, 0.2)
    p = show("ActiveState", "SubState", "MainPID", "StatusText", "NRestarts", "Type")
    say(f"edgecam.service: {p}")
    wait_for("cam1 live", stream_is("cam1", "live"), 120, 0.2)
    wait_for("STATUS= with 2/2 live", lambda: "2/2 live" in show("StatusText")["StatusText"], 30, 0.5)
    st_out = sh("SYSTEMD_COLORS=0 systemctl status --no-pager -n 0 edgecam.service", check=False)
    for l in st_out.splitlines():
        say(f"| {l}")
    if "active (running)" not in st_out:
        raise Fail("systemctl status does not say active (running)")
    status_line = [l for l in st_out.splitlines() if "Status:" in l]
    if not status_line or "live" not in status_line[0]:
        raise Fail("systemctl status shows no STATUS= line from the daemon")
    ready = journal("Started edgecam.service") or journal("Started edgecam")
    say(f"READY=1 seen by systemd: {ready[-1] if ready else '(no Started line)'}")

    code, body = http("POST", "/api/active", {"stream": "cam2"})
    if code != 200:
        raise Fail(f"POST /api/active: {code} {body[:200]!r}")
    say(f"selected cam2: {body.decode()}")

    # Arm the fault for the next start only, restart by hand, then disarm it.
    os.makedirs("/run/edgecam-vm", exist_ok=True)
    write("/run/edgecam-vm/fault.env", "EDGECAM_FAULT=hang:control@4000\n")
    sh("systemctl restart edgecam.service")
    os.remove("/run/edgecam-vm/fault.env")
    pid1 = show("MainPID")["MainPID"]
    say(f"restarted with EDGECAM_FAULT=hang:control@4000, MainPID {pid1}")
    wait_for("the hang", lambda: journal("fault injection: hanging this loop"), 60, 0.2)
    t_hang = time.monotonic()
    say("control task hung (fault injection); waiting for systemd's watchdog")

    def restarted():
        p = show("NRestarts", "ActiveState", "MainPID")
        return p if p["NRestarts"] == "1" and p["ActiveState"] == "active" and p["MainPID"] != pid1 else None

    p, _ = wait_for("watchdog restart", restarted, 120, 0.2)
    t_restart = time.monotonic() - t_hang
    say(f"restarted by systemd: {p} ({t_restart:.1f}s after the hang)")
    for pat in ("Watchdog timeout", "Killing process", "Failed with result", "Scheduled restart"):
        for l in journal(pat):
            say(f"journal: {l}")
    if not journal("Watchdog timeout"):
        raise Fail("no 'Watchdog timeout' in the journal")
    st, _ = wait_for("API after restart", lambda: status(), 60, 0.2)
    active = st["active"]
    say(f"after the restart: active {active}")
    if active["stream"] != "cam2":
        raise Fail(f"persisted selection lost: active {active}")
    sec = sh("systemd-analyze security --no-pager edgecam.service | tail -n 1", check=False)
    say(f"systemd-analyze security: {sec}")
    return (
        f"active (running) after READY=1 in {t:.1f}s of driver time; STATUS='{status_line[0].split('Status:', 1)[1].strip()}'; "
        f"watchdog restart {t_restart:.1f}s after the hang (NRestarts=1); selection cam2 restored"
    )


def dump_unit_state():
    """After a failed scenario 3: the daemon's side of the story on the serial console (the
    unit's journal and the API's stream rows), so the failure explains itself."""
    with open(CONSOLE, "w") as c:
        c.write("----- journalctl -u edgecam.service (last 150 lines) -----\n")
        out = sh("journalctl -b --no-pager -o short-monotonic -u edgecam.service -n 150", check=False)
        c.write(out + "\n")
        try:
            for row in status()["streams"]:
                c.write(f"/api/status stream: {json.dumps(row)}\n")
        except (OSError, ValueError, Fail) as e:
            c.write(f"/api/status: {e}\n")
        c.write("----- end of the daemon's side -----\n")


def poweroff():
    sys.stdout.flush()
    os.sync()
    time.sleep(1)
    try:
        write("/proc/sysrq-trigger", "o")
    except OSError:
        pass
    time.sleep(30)


def main():
    n = sys.argv[1] if len(sys.argv) > 1 else read("/vm/scenario")
    if n in ("1", "2"):
        # PID 1 without systemd: echo everything to the serial console.
        os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    run = {"1": scenario1, "2": scenario2, "3": scenario3}[n]
    say(f"scenario {n} on kernel {os.uname().release}")
    try:
        details = run()
        result = f"VM-RESULT: PASS scenario{n} {details}"
    except Fail as e:
        result = f"VM-RESULT: FAIL scenario{n} {e}"
    except Exception as e:  # noqa: BLE001 - any crash of the driver is a failed scenario
        result = f"VM-RESULT: FAIL scenario{n} driver crashed: {type(e).__name__}: {e}"
    if n == "3" and not result.startswith("VM-RESULT: PASS"):
        dump_unit_state()
    print(result, flush=True)
    if n == "3":
        # Straight to the console too, in case the journal holds stdout back.
        with open(CONSOLE, "w") as c:
            c.write(result + "\n")
    poweroff()


if __name__ == "__main__":
    main()
