// Prints build settings for libtorch, for binding.gyp: Debian's libtorch-dev by default,
// or any libtorch tree named by LIBTORCH=/path (as tch-rs does).
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const what = process.argv[2];
const root = process.env.LIBTORCH;
const multiarch = '/usr/lib/x86_64-linux-gnu';

function settings() {
  if (root) {
    if (!existsSync(join(root, 'include', 'ATen', 'ATen.h')))
      throw new Error(`LIBTORCH=${root} does not look like libtorch: include/ATen/ATen.h is missing`);
    const lib = join(root, 'lib');
    return {
      include: [join(root, 'include'), join(root, 'include', 'torch', 'csrc', 'api', 'include')],
      libdir: lib,
      abi: process.env.LIBTORCH_CXX11_ABI ?? '1',
    };
  }
  if (!existsSync('/usr/include/ATen/ATen.h'))
    throw new Error('libtorch not found: install Debian libtorch-dev (apt-get install libtorch-dev) or set LIBTORCH=/path/to/libtorch');
  return { include: ['/usr/include', '/usr/include/torch/csrc/api/include'], libdir: multiarch, abi: '1' };
}

const s = settings();
const cuda = existsSync(join(s.libdir, 'libtorch_cuda.so'));
const out = {
  include: s.include,
  cflags: [`-D_GLIBCXX_USE_CXX11_ABI=${s.abi}`],
  libs: [
    `-L${s.libdir}`,
    `-Wl,-rpath,${s.libdir}`,
    '-ltorch',
    '-ltorch_cpu',
    '-lc10',
    ...(cuda ? ['-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : []),
  ],
}[what];
if (!out) throw new Error(`usage: libtorch.mjs include|cflags|libs`);
console.log(out.join(' '));
