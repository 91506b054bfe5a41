// Runs Debian's python3-dkim (dkimpy), an independent DKIM implementation, over messages: dkim_verify.py
// beside this file's source, with the DNS answers given here instead of real DNS.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The interpreter python3-dkim is installed for (not a pyenv python3 that may come first on PATH). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

// Resolved from test/dist/integration/deliverability at run time: the script is not compiled.
const SCRIPT = fileURLToPath(new URL('../../../integration/deliverability/dkim_verify.py', import.meta.url));

const VERIFY_TIMEOUT_MS = 60_000;

export interface SignatureVerdict {
  readonly index: number;
  readonly ok: boolean;
  readonly error: string | null;
  readonly d: string | null;
  readonly s: string | null;
  readonly a: string | null;
}

export interface MessageVerdict {
  /** `dkim.verify(message, dnsfunc=...)`: the first (topmost) signature. */
  readonly verify: boolean;
  /** Every DKIM-Signature, topmost first. */
  readonly signatures: readonly SignatureVerdict[];
}

/** `<selector>._domainkey.<domain>` -> TXT record text. */
export type DkimRecords = Readonly<Record<string, string>>;

/** Verifies each message with dkimpy, answering DNS from `records`; one verdict per message, in order. */
export function verifyWithDkimpy(
  messages: readonly Buffer[],
  records: DkimRecords,
): Promise<MessageVerdict[]> {
  const input = JSON.stringify({ records, messages: messages.map((m) => m.toString('base64')) });
  return new Promise((resolve, reject) => {
    const child = spawn(SYSTEM_PYTHON, [SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: VERIFY_TIMEOUT_MS,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`dkim_verify.py exited ${code ?? signal}: ${Buffer.concat(err).toString()}`));
        return;
      }
      try {
        const parsed = JSON.parse(Buffer.concat(out).toString('utf8')) as { results: MessageVerdict[] };
        resolve(parsed.results);
      } catch (parseError) {
        reject(parseError instanceof Error ? parseError : new Error(String(parseError)));
      }
    });
    child.stdin.end(input);
  });
}
