/**
 * What the sink does with a recipient, chosen by the recipient's local part.
 *
 * `times` counts attempts per exact recipient address: the first `times` attempts get the scripted
 * failure, later ones are accepted.
 */
export type SinkBehaviour =
  | { readonly kind: 'accept' }
  /** `421 4.4.2` at RCPT, then the connection is closed. */
  | { readonly kind: 'temp421'; readonly times: number }
  /** `451 4.3.0` at RCPT. */
  | { readonly kind: 'temp451'; readonly times: number }
  /** `450 4.7.28` at RCPT. */
  | { readonly kind: 'throttle'; readonly times: number }
  /** `421 4.7.28` at RCPT (a mailbox provider's "too many messages, slow down"), then the connection is closed. */
  | { readonly kind: 'busy421'; readonly times: number }
  /** `550 5.1.1` at RCPT, always. */
  | { readonly kind: 'bounce' }
  /** `452 4.2.2` at RCPT, always. */
  | { readonly kind: 'full' }
  /** `552 5.3.4` after DATA, always. */
  | { readonly kind: 'toobig' }
  /** `451 4.3.0` after DATA. */
  | { readonly kind: 'datafail451'; readonly times: number }
  /** Accepted, but the reply to the final dot is held back for `delayMs` milliseconds. */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** The message is read in full and never answered. */
  | { readonly kind: 'stalldata' }
  /** The socket is destroyed at RCPT without a reply. */
  | { readonly kind: 'drop' }
  /** The message is stored, then the socket is destroyed before the reply to the final dot. */
  | { readonly kind: 'acceptdrop' };

const ACCEPT: SinkBehaviour = { kind: 'accept' };

/** Scripts without a number: the word alone or followed by `-anything`. */
const PLAIN = /^(bounce|full|toobig|stalldata|drop|acceptdrop|ok)(?:-|$)/;
/** Scripts with a number: `word-N` alone or followed by `-anything`. */
const COUNTED = /^(temp421|temp451|throttle|busy421|datafail451|slow)-(\d{1,9})(?:-|$)/;

/**
 * Reads the behaviour scripted into a recipient's local part (KumoMTA "smart sink" style), e.g.
 * `temp451-2-alice` fails twice with 451 and then accepts. The match is a case-insensitive prefix;
 * anything that does not match a script exactly (including a counted script without its number,
 * such as `temp451-alice`) is accepted. A full address is accepted too: only the part before the
 * last `@` is read.
 */
export function parseScript(localPart: string): SinkBehaviour {
  const at = localPart.lastIndexOf('@');
  const local = (at === -1 ? localPart : localPart.slice(0, at)).toLowerCase();

  const plain = PLAIN.exec(local);
  if (plain) {
    switch (plain[1]) {
      case 'bounce':
        return { kind: 'bounce' };
      case 'full':
        return { kind: 'full' };
      case 'toobig':
        return { kind: 'toobig' };
      case 'stalldata':
        return { kind: 'stalldata' };
      case 'drop':
        return { kind: 'drop' };
      case 'acceptdrop':
        return { kind: 'acceptdrop' };
      default:
        return ACCEPT;
    }
  }

  const counted = COUNTED.exec(local);
  if (counted) {
    const n = Number(counted[2]);
    switch (counted[1]) {
      case 'temp421':
        return { kind: 'temp421', times: n };
      case 'temp451':
        return { kind: 'temp451', times: n };
      case 'throttle':
        return { kind: 'throttle', times: n };
      case 'busy421':
        return { kind: 'busy421', times: n };
      case 'datafail451':
        return { kind: 'datafail451', times: n };
      case 'slow':
        return { kind: 'slow', delayMs: n };
    }
  }
  return ACCEPT;
}
