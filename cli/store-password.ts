import { SdcError } from '../core/errors/index.js';
import { readSecretFile } from './secret-file.js';

export interface UrlWithPasswordFileOptions {
  /** The store URL as given (--mysql, --redis). */
  url: string;
  /** The password file's path (its option or environment variable), or undefined/'' for none. */
  file: string | undefined;
  /** The option the URL came from, for the refusal that names it (`--mysql`). */
  urlOption: string;
  /** How refusals name the file (`MySQL password file`). */
  what: string;
}

/**
 * The store URL with the password from a file put into it, percent-encoded. A URL that already
 * has a password and a file is refused: which one was meant is not ours to guess. A URL that does
 * not parse is returned as given, for the store URL check that names what such a URL looks like.
 * The password never appears in a refusal: only the file's path does.
 */
export async function urlWithPasswordFile(options: UrlWithPasswordFileOptions): Promise<string> {
  const { file } = options;
  if (file === undefined || file === '') return options.url;
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return options.url;
  }
  if (url.password !== '') throw new SdcError('CLI_USAGE', `${options.urlOption} has a password and a password file is given (${file}): use one of them`);
  url.password = encodeURIComponent(await readSecretFile({ path: file, what: options.what, privateModeRequired: false }));
  return url.toString();
}
