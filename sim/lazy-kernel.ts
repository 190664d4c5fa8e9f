import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';

/**
 * A kernel bridge built on its first call (issue 17, start-up): a simulated device's mock kernel
 * and its bridge hold two Ed25519 key pairs (the kernel's service key and the bridge's agent key),
 * and with `--crypto real` deriving their public keys cost two private-key imports per agent at
 * world building, for devices most of which make no kernel call in a short run (only commands
 * reach the kernel). `make` runs once, on the first call; every randomness it needs must be drawn
 * by the caller beforehand, so that the run draws the same numbers in the same order as when the
 * bridge was built at once, and the trace does not change. A bridge closed before its first call
 * is built closed: a later call is refused as the closed bridge refuses it.
 */
export function lazyKernelBridge(backend: KernelBridge['backend'], make: () => KernelBridge): KernelBridge & { readonly built: boolean } {
  let bridge: KernelBridge | undefined;
  let closedEarly = false;
  const get = (): KernelBridge => {
    if (bridge === undefined) {
      bridge = make();
      if (closedEarly) bridge.close();
    }
    return bridge;
  };
  return {
    backend,
    get built() { return bridge !== undefined; },
    pingKernel: (nonce, auth) => get().pingKernel(nonce, auth),
    lockScreen: (auth) => get().lockScreen(auth),
    getProcessList: (maxEntries, auth) => get().getProcessList(maxEntries, auth),
    stageUpdate: (args, auth) => get().stageUpdate(args, auth),
    commitUpdate: (version, auth, options) => get().commitUpdate(version, auth, options),
    rollbackUpdate: (auth) => get().rollbackUpdate(auth),
    getStatus: (auth) => get().getStatus(auth),
    close: () => {
      if (bridge === undefined) closedEarly = true;
      else bridge.close();
    },
  };
}
