import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A key and its certificate, both PEM. */
export interface IssuedCertificate {
  key: string;
  cert: string;
}

/** A private certificate authority made for one test run. */
export interface TestCertificateAuthority {
  /** CA certificate (PEM): what clients are told to trust. */
  readonly cert: string;
  /**
   * Issues a server certificate (EC P-256, SHA-256, serverAuth). `altNames` are DNS names or IP
   * addresses (default `[commonName]`). An `expired` certificate was valid for one day, two days ago;
   * any other is valid from an hour ago for two days.
   */
  issue(options: { commonName: string; altNames?: string[]; expired?: boolean }): Promise<IssuedCertificate>;
}

/** Error of the certificate helpers; `code` is stable. */
export class TestCertificateError extends Error {
  override readonly name = 'TestCertificateError';
  constructor(
    readonly code: 'CERT_BAD_NAME' | 'CERT_OPENSSL_FAILED',
    message: string,
  ) {
    super(message);
  }
}

/** Each openssl run gets this long; a healthy one takes a few milliseconds. */
const OPENSSL_TIMEOUT_MS = 15_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Characters allowed in names that end up inside openssl config text and -subj. */
const SAFE_NAME = /^[A-Za-z0-9*._:-]{1,253}$/;
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(cwd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: OPENSSL_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err) {
        reject(
          new TestCertificateError(
            'CERT_OPENSSL_FAILED',
            `openssl ${args[0]} failed: ${stderr || err.message}`,
          ),
        );
      } else {
        resolve();
      }
    });
  });
}

/** Runs `work` in a fresh temporary directory that is removed afterwards, whatever happens. */
async function inTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-certs-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function checkName(name: string): string {
  if (!SAFE_NAME.test(name))
    throw new TestCertificateError('CERT_BAD_NAME', `unsupported certificate name: ${name}`);
  return name;
}

function subjectAltName(names: readonly string[]): string {
  return names.map((name) => (isIP(checkName(name)) ? `IP:${name}` : `DNS:${name}`)).join(',');
}

/** OpenSSL's UTCTime form, YYMMDDHHMMSSZ, as `openssl ca -startdate/-enddate` takes it. */
function asn1Time(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
}

function leafExtensions(altNames: readonly string[]): string {
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = serverAuth',
    `subjectAltName = ${subjectAltName(altNames)}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
}

/** Minimal `openssl ca` configuration: the only way OpenSSL 3.0 takes explicit validity dates. */
const CA_CONFIG = [
  '[ ca ]',
  'default_ca = test_ca',
  '[ test_ca ]',
  'database = index.txt',
  'new_certs_dir = .',
  'serial = serial',
  'default_md = sha256',
  'policy = any_name',
  'unique_subject = no',
  'copy_extensions = none',
  '[ any_name ]',
  'commonName = supplied',
  '',
].join('\n');

/** Creates a private CA (EC P-256, SHA-256) for this test run; its key never leaves memory and temp dirs. */
export async function createTestCertificateAuthority(): Promise<TestCertificateAuthority> {
  const ca = await inTempDir(async (dir) => {
    await openssl(dir, [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-sha256',
      '-subj',
      '/CN=Mailroom Test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return {
      key: await readFile(join(dir, 'ca.key'), 'utf8'),
      cert: await readFile(join(dir, 'ca.crt'), 'utf8'),
    };
  });

  return {
    cert: ca.cert,
    issue: ({ commonName, altNames, expired = false }) =>
      inTempDir(async (dir) => {
        const names = altNames ?? [commonName];
        const now = Date.now();
        const [start, end] = expired ? [now - 2 * DAY_MS, now - DAY_MS] : [now - HOUR_MS, now + 2 * DAY_MS];
        await Promise.all([
          writeFile(join(dir, 'ca.key'), ca.key, { mode: 0o600 }),
          writeFile(join(dir, 'ca.crt'), ca.cert),
          writeFile(join(dir, 'ca.cnf'), CA_CONFIG),
          writeFile(join(dir, 'leaf.ext'), leafExtensions(names)),
          writeFile(join(dir, 'index.txt'), ''),
          writeFile(join(dir, 'serial'), randomBytes(8).toString('hex').replace(/^./, '1') + '\n'),
        ]);
        await openssl(dir, [
          'req',
          '-new',
          ...EC_KEY,
          '-keyout',
          'leaf.key',
          '-out',
          'leaf.csr',
          '-subj',
          `/CN=${checkName(commonName)}`,
        ]);
        await openssl(dir, [
          'ca',
          '-batch',
          '-notext',
          '-config',
          'ca.cnf',
          '-cert',
          'ca.crt',
          '-keyfile',
          'ca.key',
          '-in',
          'leaf.csr',
          '-out',
          'leaf.crt',
          '-startdate',
          asn1Time(start),
          '-enddate',
          asn1Time(end),
          '-extfile',
          'leaf.ext',
        ]);
        return {
          key: await readFile(join(dir, 'leaf.key'), 'utf8'),
          cert: await readFile(join(dir, 'leaf.crt'), 'utf8'),
        };
      }),
  };
}

/** A self-signed server certificate (EC P-256, SHA-256), issued by no CA: nothing should trust it. */
export function createSelfSignedCertificate(
  commonName: string,
  altNames?: string[],
): Promise<IssuedCertificate> {
  return inTempDir(async (dir) => {
    await openssl(dir, [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      'self.key',
      '-out',
      'self.crt',
      '-days',
      '2',
      '-sha256',
      '-subj',
      `/CN=${checkName(commonName)}`,
      '-addext',
      `subjectAltName=${subjectAltName(altNames ?? [commonName])}`,
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'extendedKeyUsage=serverAuth',
    ]);
    return {
      key: await readFile(join(dir, 'self.key'), 'utf8'),
      cert: await readFile(join(dir, 'self.crt'), 'utf8'),
    };
  });
}
