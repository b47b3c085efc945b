// The parent page's own errors: a stable code for each way the page can fail, one message a parent can read, the cause kept.
import { CodedError } from '../../shared/errors.ts';

export type WebErrorCode =
  /** The browser lacks something the page needs (WebCrypto Ed25519/X25519, IndexedDB, WebCodecs). */
  | 'WEB_UNSUPPORTED'
  /** Not a secure context (http:// on another host than localhost): no key store, no microphone. */
  | 'WEB_INSECURE'
  /** IndexedDB failed or holds something this page did not write. */
  | 'WEB_STORAGE'
  /** The gateway now presents another identity than the one this page pinned [PLK-3.6]. */
  | 'WEB_GATEWAY_CHANGED'
  /** The connection failed or closed before the gateway had proved itself. */
  | 'WEB_CONNECT'
  /** The gateway refused the connection (CONNACK 1..5) [PLK-3.3]. */
  | 'WEB_REFUSED'
  /** The gateway's proof was missing, late or wrong [PLK-3.6]. */
  | 'WEB_PROOF'
  /** Recording or encoding failed (no microphone, permission denied, encoder error). */
  | 'WEB_RECORD'
  /** No toy in the family to send to. */
  | 'WEB_NO_TOY'
  /** A signature could not be made or did not come out as the protocol requires [PLK-2.3]. */
  | 'WEB_SIGN';

export class WebError extends CodedError<WebErrorCode> {
  /** CONNACK return code, for WEB_REFUSED. */
  readonly returnCode: number | undefined;
  constructor(
    code: WebErrorCode,
    message: string,
    options?: { readonly cause?: unknown; readonly returnCode?: number },
  ) {
    super(code, message, options);
    this.returnCode = options?.returnCode;
  }
}
