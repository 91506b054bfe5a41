import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { assertRunning, startProcess } from '../lib/child-process.mjs';
import { BenchProcessError } from '../lib/bench-errors.mjs';
import { registerCleanup } from '../lib/cleanup.mjs';
import { findExecutable } from '../lib/find-executable.mjs';
import { freePort } from '../lib/free-port.mjs';
import { canConnect } from '../lib/can-connect.mjs';
import { systemUser } from '../lib/system-user.mjs';
import { composeNewsletter } from '../lib/newsletter.mjs';
import { waitUntil } from '../lib/wait-until.mjs';

const execFileAsync = promisify(execFile);
/** Parallel injection sessions of smtp-source, one message per session. */
const INJECT_SESSIONS = 20;
const TOOLS = ['postfix', 'postconf', 'postqueue', 'smtp-source'];

/**
 * main.cf of the relay. It starts from an empty file, not Debian's, because main.cf.dist carries blank
 * required parameters (`setgid_group =`) that stop Postfix with a fatal error it can only log to syslog.
 * Everything not set here is at Postfix's defaults: cleanup fsyncs every queue file, in_flow_delay is
 * 1 s, and every delivery is logged (to maillog_file, since a container usually has no syslog).
 * @param {{ dir: string, relayPort: number, connections: number }} options `connections`: concurrent
 *   deliveries to the relay host (Postfix opens one connection per delivery agent)
 * @returns {Record<string, string>}
 */
function mainCf({ dir, relayPort, connections }) {
  return {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: 'relay.bench.test',
    mydomain: 'bench.test',
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    mydestination: '',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    relayhost: `[127.0.0.1]:${relayPort}`,
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    default_destination_concurrency_limit: String(connections),
    smtp_destination_concurrency_limit: String(connections),
    maillog_file_prefixes: dir,
    maillog_file: join(dir, 'maillog'),
  };
}

/**
 * master.cf: Debian's services with chroot off everywhere (a private queue directory has no copies of
 * /etc inside it), and the SMTP listener on a private loopback port instead of port 25.
 * @param {number} smtpdPort
 */
function masterCf(smtpdPort) {
  return [
    `127.0.0.1:${smtpdPort} inet n - n - - smtpd`,
    'pickup    unix  n - n 60    1 pickup',
    'cleanup   unix  n - n -     0 cleanup',
    'qmgr      unix  n - n 300   1 qmgr',
    'rewrite   unix  - - n -     - trivial-rewrite',
    'bounce    unix  - - n -     0 bounce',
    'defer     unix  - - n -     0 bounce',
    'trace     unix  - - n -     0 bounce',
    'verify    unix  - - n -     1 verify',
    'flush     unix  n - n 1000? 0 flush',
    'proxymap  unix  - - n -     - proxymap',
    'proxywrite unix - - n -     1 proxymap',
    'smtp      unix  - - n -     - smtp',
    'relay     unix  - - n -     - smtp',
    'showq     unix  n - n -     - showq',
    'error     unix  - - n -     - error',
    'retry     unix  - - n -     - error',
    'discard   unix  - - n -     - discard',
    'local     unix  - n n -     - local',
    'anvil     unix  - - n -     1 anvil',
    'scache    unix  - - n -     1 scache',
    'postlog   unix-dgram n - n - 1 postlogd',
    '',
  ].join('\n');
}

/**
 * (a) Postfix as a queueing relay: smtp-source injects the newsletter into a private Postfix instance
 * (its own configuration and queue directories), which relays every message to the sink. The run ends
 * when the sink counted N and `postqueue -p` says the queue is empty.
 * @type {import('../lib/measure-run.mjs').BenchSystem}
 */
export const postfixRelay = {
  id: 'postfix',
  label: 'Postfix relay',
  unavailableReason() {
    const missing = TOOLS.filter((tool) => !findExecutable(tool));
    if (missing.length > 0) {
      return `${missing.join(', ')} not installed (Debian: DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)`;
    }
    if (process.getuid?.() !== 0) return 'a private Postfix instance needs root';
    if (systemUser('postfix') === undefined) return 'no postfix user in /etc/passwd';
    return undefined;
  },
  settings: ({ connections }) => ({
    mainCf: {
      ...mainCf({ dir: '<temp dir>', relayPort: 0, connections }),
      relayhost: '[127.0.0.1]:<sink or latency proxy port>',
    },
    masterCf: 'Debian services, chroot off, smtpd on a private 127.0.0.1 port',
    injection: `smtp-source -s ${INJECT_SESSIONS} -N -m N -F <the newsletter for reader 1, as nodemailer composes it>: one SMTP session per message`,
  }),
  async setUp({ n, relayPort, connections, timeoutMs }) {
    const user = /** @type {{ uid: number, gid: number }} */ (systemUser('postfix'));
    const tool = (/** @type {string} */ name) => /** @type {string} */ (findExecutable(name));
    const daemonDirectory = execFileSync(tool('postconf'), ['-d', '-h', 'daemon_directory'], {
      encoding: 'utf8',
    }).trim();
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-postfix-'));
    const dropDir = registerCleanup(`postfix directory ${dir}`, () =>
      rmSync(dir, { recursive: true, force: true }),
    );
    /** @type {(() => Promise<void>)[]} */
    const undo = [
      async () => {
        rmSync(dir, { recursive: true, force: true });
        dropDir();
      },
    ];
    const tearDown = async () => {
      const steps = undo.splice(0).reverse();
      for (const step of steps) await step();
    };
    try {
      // Postfix's daemons drop root and then work in the queue directory: its parents must be traversable.
      chmodSync(dir, 0o755);
      const conf = join(dir, 'conf');
      mkdirSync(conf);
      mkdirSync(join(dir, 'queue'));
      mkdirSync(join(dir, 'data'));
      chownSync(join(dir, 'data'), user.uid, user.gid);
      const smtpdPort = await freePort();
      const settings = mainCf({ dir, relayPort, connections });
      writeFileSync(
        join(conf, 'main.cf'),
        Object.entries(settings)
          .map(([key, value]) => `${key} = ${value}\n`)
          .join(''),
      );
      writeFileSync(join(conf, 'master.cf'), masterCf(smtpdPort));
      // `postfix check` creates the queue's subdirectories with their owners and modes.
      execFileSync(tool('postfix'), ['-c', conf, 'check'], { stdio: ['ignore', 'ignore', 'pipe'] });
      const maillog = join(dir, 'maillog');

      // -s keeps the master in this process's reach (no detaching): it leads its own process group, which
      // holds every daemon it spawns, so stopping the group stops the whole instance.
      const master = startProcess(join(daemonDirectory, 'master'), ['-c', conf, '-s'], {
        name: 'postfix master',
      });
      undo.push(() => master.stop({ group: true, graceMs: 10_000 }));
      await waitUntil(
        async () => {
          assertRunning([master]);
          return readText(maillog).includes('daemon started') && (await canConnect(smtpdPort));
        },
        { timeoutMs, intervalMs: 50, what: `postfix to listen on port ${smtpdPort} (log: ${maillog})` },
      );

      // smtp-source -F appends CRLF to every line of the file itself: the file has bare LF line ends.
      const messageFile = join(dir, 'newsletter.eml');
      writeFileSync(
        messageFile,
        (await composeNewsletter(0)).toString('latin1').replace(/\r\n/g, '\n'),
        'latin1',
      );
      const sourceArgs = [
        '-s',
        String(INJECT_SESSIONS),
        '-N',
        '-m',
        String(n),
        '-F',
        messageFile,
        '-M',
        'injector.bench.test',
        '-f',
        'weekly@news.example.test',
        '-t',
        'reader@example.test',
        `127.0.0.1:${smtpdPort}`,
      ];
      // A shell waits for "go", runs smtp-source, prints its exit status and stays until its input closes,
      // so that smtp-source's CPU stays readable (in the shell's cutime) after it exits.
      const injector = startProcess(
        '/bin/sh',
        [
          '-c',
          'read -r _; "$0" "$@"; echo "injected rc=$?"; read -r _ || true',
          tool('smtp-source'),
          ...sourceArgs,
        ],
        { name: 'smtp-source', stdin: true },
      );
      undo.push(async () => {
        injector.endInput();
        await injector.stop({ graceMs: 5000 });
      });
      return {
        processes: [
          { name: 'postfix (master and all daemons)', pid: master.pid, tree: true, memory: false },
          { name: 'smtp-source', pid: injector.pid, tree: true, memory: false },
        ],
        async handOver() {
          injector.write('go\n');
          // Injection ends when smtp-source does.
          const [, rc] = await injector.waitForOutput(/injected rc=(\d+)/, 24 * 3600 * 1000);
          if (rc !== '0') {
            throw new BenchProcessError(`smtp-source exited with ${rc}: ${injector.output().slice(-2000)}`);
          }
        },
        assertHealthy: () => assertRunning([master, injector]),
        async isDrained() {
          const { stdout } = await execFileAsync(tool('postqueue'), ['-c', conf, '-p'], { timeout: 10_000 });
          return stdout.includes('Mail queue is empty');
        },
        tearDown,
      };
    } catch (err) {
      await tearDown();
      throw err;
    }
  },
};

/** @param {string} path */
function readText(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
