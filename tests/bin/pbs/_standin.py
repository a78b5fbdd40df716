"""A stand-in PBS Pro on one machine: `qsub`, `qstat`, `qdel` and `mpiexec` for the tests.

No PBS server can be installed here, so these run each job locally, in the background, and
keep a tiny state folder: enough for Parsl's PBSProProvider (pilot jobs: `qsub -q Q -A A
SCRIPT`, `qstat -x -f -F json IDS`, `qdel IDS`) and for `rasterflow job` on a pbs site
(`#PBS` directives, `-W depend=afterany:ID`, `$PBS_JOBID`, `$PBS_NODEFILE`, mpiexec).

What it does like PBS Pro: job ids `<n>.standin`; the directives in the script (`#PBS` lines
before the first command) and the same options on the command line (which win); `-o`/`-e`
files, a directory for `-o` (then `<name>.o<n>`), `-j oe`; the job starts in $HOME with a
fresh environment (HOME, USER, LOGNAME, SHELL, LANG, a system PATH, the PBS_O_* copies of the
submitter's, PBS_JOBID, PBS_JOBNAME, PBS_QUEUE, PBS_NODEFILE, PBS_O_WORKDIR, NCPUS, a short
per-job TMPDIR), plus the submitter's whole environment with `-V` and single variables with
`-v`; `-l walltime` is enforced; `qdel` and a walltime kill end every process of the job
(the job's runner is a child subreaper, so daemonised workers are found too) and record
Exit_status 271; `afterany`/`afterok`/`afternotok` dependencies; `qstat -x` shows
finished jobs (state F).
What it does not: queues, resources, nodes (every chunk of `select` is this machine, so the
nodefile lists this host once per chunk), arrays, holds, staging, accounting, mail.

State: $PBS_STANDIN_STATE (default $TMPDIR/pbs-standin-$UID), one folder per job under
`jobs/`. `mpiexec -n N [options] CMD ...` starts N copies of CMD here and waits for them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = "standin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HERE = Path(__file__).resolve().parent
KILLED_EXIT = 271  # PBS Pro: 256 + SIGTERM, for qdel and walltime kills
ARG_OPTIONS = set("aAcCeIjJkKlmMNoOpPqrRSuvWX")  # qsub options that take a value
FLAG_OPTIONS = set("Vz")


def state_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"pbs-standin-{os.getuid()}"
    path = Path(os.environ.get("PBS_STANDIN_STATE") or default)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


def job_dir(job_id: str) -> Path:
    return state_dir() / "jobs" / job_id


def read_job(job_id: str) -> dict | None:
    try:
        return json.loads((job_dir(job_id) / "job.json").read_text())
    except (OSError, ValueError):
        return None


def update_job(job_id: str, **changes) -> dict:
    """Read-modify-write one job's record under the server lock."""
    with server_lock():
        job = read_job(job_id) or {}
        job.update(changes)
        path = job_dir(job_id) / "job.json"
        tmp = path.with_name(f"job.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(job, indent=1))
        os.replace(tmp, path)
        return job


@contextlib.contextmanager
def server_lock():
    with open(state_dir() / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def all_job_ids() -> list[str]:
    ids = [p.name for p in (state_dir() / "jobs").iterdir() if (p / "job.json").is_file()]
    return sorted(ids, key=lambda i: int(i.split(".")[0]))


def resolve_id(given: str) -> str | None:
    """`12`, `12.standin` or `12.standin.example.org` → the stored id, or None."""
    number = given.split(".")[0]
    stored = f"{number}.{SERVER}"
    return stored if read_job(stored) is not None else None


# --- qsub ----------------------------------------------------------------------------------------


def parse_options(args: list[str], options: dict, where: str) -> list[str]:
    """Apply qsub options from `args` to `options`; return the operands left."""
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            return args[i:]
        letter, value = arg[1:2], arg[2:]
        if letter in FLAG_OPTIONS and not value:
            options[letter] = True
        elif letter in ARG_OPTIONS:
            if not value:
                i += 1
                if i >= len(args):
                    raise UsageError(f"option -{letter} needs a value ({where})")
                value = args[i]
            if letter in "lvW":
                options.setdefault(letter, []).append(value)
            else:
                options[letter] = value
        else:
            raise UsageError(f"option {arg} is not supported by the stand-in qsub ({where})")
        i += 1
    return []


class UsageError(Exception):
    pass


def directives(script: str) -> list[str]:
    """The `#PBS` lines before the script's first command, as option words."""
    words: list[str] = []
    for line in script.splitlines()[1:] if script.startswith("#!") else script.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#PBS"):
            words += shlex.split(stripped[4:], comments=False)
        elif not stripped.startswith("#"):
            break
    return words


def qsub(argv: list[str]) -> int:
    try:
        cli: dict = {}
        operands = parse_options(argv, cli, "command line")
        if len(operands) != 1:
            raise UsageError("usage: qsub [options] SCRIPT (reading a script from stdin: no)")
        script_path = Path(operands[0])
        script = script_path.read_text()
        options: dict = {}
        parse_options(directives(script), options, f"#PBS line in {script_path}")
    except (UsageError, OSError) as exc:
        print(f"qsub: {exc}", file=sys.stderr)
        return 2
    for key, value in cli.items():  # the command line wins; -l, -v and -W add up
        if key in "lvW":
            options.setdefault(key, []).extend(value)
        else:
            options[key] = value
    resources = {}
    for item in options.get("l", []):
        for part in item.split(","):
            key, _, value = part.partition("=")
            resources[key] = value
    depend: list[tuple[str, str]] = []
    for item in options.get("W", []):
        key, _, value = item.partition("=")
        if key != "depend":
            continue
        for clause in value.split(","):
            kind, *ids = clause.split(":")
            if kind not in ("afterany", "afterok", "afternotok"):
                print(f"qsub: dependency type {kind!r} is not supported", file=sys.stderr)
                return 2
            for given in ids:
                stored = resolve_id(given)
                if stored is None:
                    print(f"qsub: illegal -W value (unknown job {given})", file=sys.stderr)
                    return 2
                depend.append((kind, stored))
    try:
        walltime = parse_walltime(resources["walltime"]) if "walltime" in resources else None
        chunks, ncpus = parse_select(resources.get("select", "1"))
    except ValueError as exc:
        print(f"qsub: illegal -l value: {exc}", file=sys.stderr)
        return 2

    with server_lock():
        counter = state_dir() / "sequence"
        number = int(counter.read_text() or 0) + 1 if counter.exists() else 1
        counter.write_text(str(number))
    job_id = f"{number}.{SERVER}"
    folder = job_dir(job_id)
    folder.mkdir(parents=True)
    (folder / "script").write_text(script)
    workdir = os.getcwd()
    name = options.get("N", script_path.name)[:236]
    out, err = output_paths(options, name, number, workdir)
    env = job_environment(options, job_id, name, workdir, ncpus, folder)
    update_job(
        job_id,
        id=job_id, Job_Name=name, Job_Owner=f"{user()}@{socket.gethostname()}",
        job_state="H" if depend else "Q", queue=options.get("q", "workq"),
        Account_Name=options.get("A"), Resource_List=resources,
        Output_Path=str(out), Error_Path=str(err) if err else str(out),
        Join_Path="oe" if err is None else "n", depend=[f"{k}:{i}" for k, i in depend],
        walltime_s=walltime, chunks=chunks, ncpus=ncpus, shell=options.get("S", "/bin/bash"),
        env=env, ctime=time.time(), submit_args=argv,
    )  # fmt: skip
    runner = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_run", job_id],
        stdin=subprocess.DEVNULL,
        stdout=open(folder / "runner.log", "ab"),  # noqa: SIM115 - handed to the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        env={**os.environ, "PBS_STANDIN_STATE": str(state_dir())},
    )
    update_job(job_id, runner_pid=runner.pid)
    if not options.get("z"):
        print(job_id, flush=True)
    return 0


def parse_walltime(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"walltime={text}")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def parse_select(text: str) -> tuple[int, int]:
    """`select=2:ncpus=32:ngpus=4` → (2 chunks, 32 cpus per chunk)."""
    first, *rest = text.split(":")
    chunks = int(first) if first.isdigit() else 1
    ncpus = 1
    for part in rest if first.isdigit() else [first, *rest]:
        key, _, value = part.partition("=")
        if key == "ncpus":
            ncpus = int(value)
    return chunks, ncpus


def output_paths(options: dict, name: str, number: int, workdir: str):
    def place(path: str | None, suffix: str) -> Path:
        default = f"{name}.{suffix}{number}"
        if not path:
            return Path(workdir) / default
        path = path.split(":", 1)[1] if ":" in path and not path.startswith("/") else path
        target = Path(workdir) / path if not Path(path).is_absolute() else Path(path)
        return target / default if path.endswith("/") or target.is_dir() else target

    out = place(options.get("o"), "o")
    joined = options.get("j", "n") in ("oe", "eo")
    return out, None if joined else place(options.get("e"), "e")


def user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def job_environment(options, job_id, name, workdir, ncpus, folder) -> dict:
    here = os.environ
    home = here.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    env = dict(here) if options.get("V") else {}
    env.update({f"PBS_O_{k}": here[k] for k in ("HOME", "LANG", "LOGNAME", "PATH", "MAIL",
                                                 "SHELL", "TZ") if k in here})  # fmt: skip
    for item in options.get("v", []):
        for part in item.split(","):
            key, eq, value = part.partition("=")
            env[key] = value if eq else here.get(key, "")
    env.update(
        HOME=home, USER=user(), LOGNAME=user(), SHELL=options.get("S", "/bin/bash"),
        LANG=here.get("LANG", "C.UTF-8"), PATH=f"{HERE}:{SYSTEM_PATH}",
        PBS_JOBID=job_id, PBS_JOBNAME=name, PBS_QUEUE=options.get("q", "workq"),
        PBS_O_WORKDIR=workdir, PBS_O_HOST=socket.gethostname(),
        PBS_O_QUEUE=options.get("q", "workq"),
        PBS_ENVIRONMENT="PBS_BATCH", PBS_NODEFILE=str(folder / "nodefile"),
        PBS_JOBDIR=home, NCPUS=str(ncpus), OMP_NUM_THREADS=str(ncpus),
        PBS_STANDIN_STATE=str(state_dir()),
    )  # fmt: skip
    return env


# --- the runner: one per job, in the background --------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def run_job(job_id: str) -> int:
    """Wait for dependencies, run the script, enforce walltime and qdel, record the end."""
    with contextlib.suppress(OSError, AttributeError):  # orphans come back to us
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    stop = {"signal": None}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(signal="qdel"))
    job = read_job(job_id)
    folder = job_dir(job_id)
    for clause in job["depend"]:
        kind, dep = clause.split(":", 1)
        while True:
            if stop["signal"]:
                return finish(job_id, KILLED_EXIT, "deleted while waiting")
            other = read_job(dep) or {"job_state": "F", "Exit_status": 0}
            if other["job_state"] == "F":
                break
            time.sleep(0.2)
        status = other.get("Exit_status", 0)
        if (kind == "afterok" and status != 0) or (kind == "afternotok" and status == 0):
            return finish(job_id, None, f"dependency {clause} cannot be met: job deleted")
    if stop["signal"]:
        return finish(job_id, KILLED_EXIT, "deleted while queued")
    host = socket.gethostname()
    (folder / "nodefile").write_text("".join(f"{host}\n" for _ in range(job["chunks"])))
    # A short per-job TMPDIR, removed at the end as PBS does (UNIX sockets live there).
    tmpdir = tempfile.mkdtemp(prefix=f"pbs.{job_id}.", dir=tempfile.gettempdir())
    out = Path(job["Output_Path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    stdout = open(out, "ab")  # noqa: SIM115 - handed to the job
    joined = job["Join_Path"] == "oe"
    stderr = stdout if joined else open(job["Error_Path"], "ab")  # noqa: SIM115
    env = {**job["env"], "TMPDIR": tmpdir}
    process = subprocess.Popen(
        [job["shell"], str(folder / "script")],
        cwd=env["HOME"], env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
        start_new_session=True,
    )  # fmt: skip
    started = time.time()
    update_job(job_id, job_state="R", stime=started, session_id=process.pid, exec_host=host)
    status = None
    while status is None:
        if stop["signal"] or (job["walltime_s"] and time.time() - started > job["walltime_s"]):
            reason = stop["signal"] or "walltime"
            if reason == "walltime":
                note = f"=>> PBS: job killed: walltime {job['walltime_s']} exceeded limit\n"
                stdout.write(note.encode())
                stdout.flush()
            kill_descendants()
            shutil.rmtree(tmpdir, ignore_errors=True)
            return finish(job_id, KILLED_EXIT, reason)
        status = reap(process.pid)
        time.sleep(0.1)
    kill_descendants()  # PBS ends every process of the job with its script
    shutil.rmtree(tmpdir, ignore_errors=True)
    return finish(job_id, status, "done")


def reap(main_pid: int) -> int | None:
    """Wait for any finished child (orphans included); the main one's exit status if it ended."""
    result = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return result
        if pid == 0:
            return result
        if pid == main_pid:
            result = os.waitstatus_to_exitcode(wait_status)
            result = 256 - result if result < 0 else result  # killed by signal n: 256 + n


def descendants() -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants(grace: float = 3.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = descendants()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            reap(-1)
            if not descendants():
                return
            time.sleep(0.1)
    reap(-1)


def finish(job_id: str, status: int | None, comment: str) -> int:
    changes = {"job_state": "F", "comment": comment, "mtime": time.time()}
    if status is not None:
        changes["Exit_status"] = status
    else:
        changes["Exit_status"] = -3  # never ran
    update_job(job_id, **changes)
    return 0


# --- qstat and qdel ------------------------------------------------------------------------------


def public(job: dict) -> dict:
    keys = ("Job_Name", "Job_Owner", "job_state", "queue", "Account_Name", "Resource_List",
            "Output_Path", "Error_Path", "Join_Path", "depend", "comment", "exec_host",
            "Exit_status", "session_id")  # fmt: skip
    shown = {k: job[k] for k in keys if job.get(k) is not None}
    for stamp in ("ctime", "stime", "mtime"):
        if job.get(stamp):
            shown[stamp] = time.ctime(job[stamp])
    if "depend" in shown:
        shown["depend"] = ",".join(shown["depend"]) or None
    return {k: v for k, v in shown.items() if v is not None}


def qstat(argv: list[str]) -> int:
    finished = full = as_json = False
    ids: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-x":
            finished = True
        elif arg == "-f":
            full = True
        elif arg == "-F":
            i += 1
            if i >= len(argv) or argv[i] not in ("json", "dsv"):
                print("qstat: -F takes json", file=sys.stderr)
                return 2
            as_json = argv[i] == "json"
        elif arg == "-u":
            i += 1  # every job here is the caller's
        elif arg.startswith("-"):
            print(f"qstat: option {arg} is not supported by the stand-in", file=sys.stderr)
            return 2
        else:
            ids.append(arg)
        i += 1
    code = 0
    shown: dict[str, dict] = {}
    for given in ids or all_job_ids():
        stored = resolve_id(given)
        if stored is None:
            print(f"qstat: Unknown Job Id {given}", file=sys.stderr)
            code = 153
            continue
        job = read_job(stored)
        if job["job_state"] == "F" and not finished:
            if ids:
                print(f"qstat: {given} Job has finished, use -x or -H", file=sys.stderr)
                code = 35
            continue
        shown[stored] = public(job)
    if as_json:
        document = {"timestamp": int(time.time()), "pbs_version": "standin",
                    "pbs_server": SERVER, "Jobs": shown}  # fmt: skip
        print(json.dumps(document, indent=4))
    elif full:
        for job_id, job in shown.items():
            print(f"Job Id: {job_id}")
            for key, value in job.items():
                print(f"    {key} = {value}")
            print()
    elif shown:
        print(f"{'Job id':<17}{'Name':<17}{'User':<17}{'Time Use':<9}S Queue")
        print(f"{'-' * 16} {'-' * 16} {'-' * 16} {'-' * 8} - {'-' * 5}")
        for job_id, job in shown.items():
            owner = job.get("Job_Owner", "").split("@")[0]
            print(f"{job_id:<17}{job['Job_Name'][:16]:<17}{owner[:16]:<17}{'0':<9}"
                  f"{job['job_state']} {job.get('queue', '')}")  # fmt: skip
    return code


def qdel(argv: list[str]) -> int:
    ids = [a for a in argv if not a.startswith("-")]
    if not ids:
        print("usage: qdel JOB_ID ...", file=sys.stderr)
        return 2
    code = 0
    for given in ids:
        stored = resolve_id(given)
        job = read_job(stored) if stored else None
        if job is None:
            print(f"qdel: Unknown Job Id {given}", file=sys.stderr)
            code = 153
            continue
        if job["job_state"] == "F":
            print(f"qdel: Job has finished {given}", file=sys.stderr)
            code = 35
            continue
        try:
            os.kill(job["runner_pid"], signal.SIGTERM)  # the runner ends the job's processes
        except (KeyError, ProcessLookupError):
            finish(stored, KILLED_EXIT, "deleted (runner gone)")
    return code


# --- mpiexec -------------------------------------------------------------------------------------

MPIEXEC_ARG_OPTIONS = {
    "-n", "-np", "--np", "-f", "--hostfile", "-hostfile", "--bind-to", "--cpu-bind", "--ppn",
    "-ppn", "--depth", "-d", "--env", "-genv", "-host", "--host", "--hosts",
}  # fmt: skip


def mpiexec(argv: list[str]) -> int:
    """Start N copies of the command here (ranks in PMI_RANK/PALS_RANKID) and wait for all."""
    count, i = 1, 0
    while i < len(argv) and argv[i].startswith("-"):
        arg, value = argv[i], None
        if "=" in arg:
            arg, value = arg.split("=", 1)
        elif arg in MPIEXEC_ARG_OPTIONS:
            i += 1
            value = argv[i] if i < len(argv) else None
        if arg in ("-n", "-np", "--np"):
            count = int(value)
        i += 1
    command = argv[i:]
    if not command:
        print("mpiexec: no command", file=sys.stderr)
        return 2
    ranks = [
        subprocess.Popen(
            command,
            env={**os.environ, "PMI_RANK": str(r), "PALS_RANKID": str(r), "PMI_SIZE": str(count)},
        )  # fmt: skip
        for r in range(count)
    ]

    def forward(signum, _frame):
        for rank in ranks:
            with contextlib.suppress(ProcessLookupError):
                rank.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(rank.wait() for rank in ranks)


def main() -> int:
    program = Path(sys.argv[0]).name
    args = sys.argv[1:]
    if program == "_standin.py":  # `_standin.py _run JOB_ID` or `_standin.py qstat ...`
        program, args = args[0], args[1:]
    commands = {"qsub": qsub, "qstat": qstat, "qdel": qdel, "mpiexec": mpiexec,
                "_run": lambda a: run_job(a[0])}  # fmt: skip
    return commands[program](args)


if __name__ == "__main__":
    sys.exit(main())
