/**
 * One artifact as the control plane's API lists it (GET /v1/artifacts, docs/artifacts.md): what a
 * succeeded EXEC_COLLECT_ARTIFACT command's signed result says about its upload. One shape for
 * the server that answers and the console that reads it.
 */
export interface ArtifactRecord {
  readonly id: string;
  readonly device_id: string;
  readonly kind: string;
  readonly state: string;
  readonly created_by: string;
  readonly created_at_ms: number;
  /** Of the sealed bytes in the store, as the device's signed result reports them; null until it succeeded. */
  readonly sha256: string | null;
  readonly length: number | null;
  readonly plaintext_length: number | null;
  readonly content_type: string | null;
}
