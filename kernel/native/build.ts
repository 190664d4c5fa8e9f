/**
 * Builds the native kernel library on demand: CMake when installed, else build.sh with plain cc.
 * Each build runs in its own scratch directory and the results are renamed into place, so two
 * test processes building at once never see a half-written library.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SdcError } from '../../core/errors/index.js';

/**
 * The package's own kernel/native/, also when this module runs from dist/kernel/native/ (the built
 * CLI): the build copies no C sources, so `npm run kernel:build` and a built agent share one library.
 */
export const nativeSourceDir = fileURLToPath(new URL(import.meta.url.endsWith('.js') ? '../../../kernel/native/' : '.', import.meta.url));
export const nativeBuildDir = join(nativeSourceDir, 'build');

export type NativeVariant = 'release' | 'sanitize';

export interface NativeArtifacts {
  libraryPath: string;
  harnessPath: string;
}

export function nativeArtifacts(variant: NativeVariant): NativeArtifacts {
  const dir = join(nativeBuildDir, variant);
  return { libraryPath: join(dir, 'libsdc_kernel.so'), harnessPath: join(dir, 'sdc_kernel_harness') };
}

const buildTimeoutMs = 180_000;

function newestSourceMtimeMs(): number {
  let newest = 0;
  for (const sub of ['src', 'include', 'harness']) {
    for (const name of readdirSync(join(nativeSourceDir, sub))) newest = Math.max(newest, statSync(join(nativeSourceDir, sub, name)).mtimeMs);
  }
  for (const name of ['CMakeLists.txt', 'build.sh']) newest = Math.max(newest, statSync(join(nativeSourceDir, name)).mtimeMs);
  return newest;
}

export function isNativeBuildCurrent(variant: NativeVariant): boolean {
  const { libraryPath, harnessPath } = nativeArtifacts(variant);
  if (!existsSync(libraryPath) || !existsSync(harnessPath)) return false;
  const newest = newestSourceMtimeMs();
  return statSync(libraryPath).mtimeMs >= newest && statSync(harnessPath).mtimeMs >= newest;
}

function hasCommand(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: buildTimeoutMs });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n');
    throw new SdcError('KERNEL_BUILD_FAILED', `${command} ${args.join(' ')} failed: ${result.error?.message ?? output}`);
  }
}

export interface BuildResult extends NativeArtifacts {
  tool: 'cmake' | 'cc' | 'up-to-date';
}

/** Builds (or reuses) the library; throws KERNEL_BUILD_FAILED with the compiler's last lines. */
export function buildNativeLibrary(options: { variant?: NativeVariant; force?: boolean } = {}): BuildResult {
  const variant = options.variant ?? 'release';
  const artifacts = nativeArtifacts(variant);
  if (!options.force && isNativeBuildCurrent(variant)) return { ...artifacts, tool: 'up-to-date' };
  const scratch = join(nativeBuildDir, `${variant}.tmp-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  try {
    let tool: BuildResult['tool'];
    let built: NativeArtifacts;
    if (hasCommand('cmake')) {
      run('cmake', ['-S', nativeSourceDir, '-B', scratch, '-DCMAKE_BUILD_TYPE=RelWithDebInfo', `-DSDC_SANITIZE=${variant === 'sanitize' ? 'ON' : 'OFF'}`]);
      run('cmake', ['--build', scratch, '--parallel', '2']);
      tool = 'cmake';
    } else {
      run('sh', [join(nativeSourceDir, 'build.sh'), scratch, ...(variant === 'sanitize' ? ['sanitize'] : [])]);
      tool = 'cc';
    }
    built = { libraryPath: join(scratch, 'libsdc_kernel.so'), harnessPath: join(scratch, 'sdc_kernel_harness') };
    mkdirSync(join(nativeBuildDir, variant), { recursive: true });
    // The harness finds the library by $ORIGIN, so both move into the same directory.
    renameSync(built.libraryPath, artifacts.libraryPath);
    renameSync(built.harnessPath, artifacts.harnessPath);
    return { ...artifacts, tool };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
