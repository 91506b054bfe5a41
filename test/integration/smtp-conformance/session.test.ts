import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RelayConfig } from '@mailroom/smtp';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { waitFor } from '../../harness/wait-for.js';
import {
  CASE_TIMEOUT_MS,
  PipeliningSender,
  SENDER_KINDS,
  attempt,
  buildSender,
  relayConfig,
  startScriptedServer,
  testMessage,
  type ScriptedServer,
  type ScriptedServerOptions,
  type Sender,
  type SenderKind,
} from './conformance-kit.js';

/**
 * The SMTP dialogue itself, against a raw server that records every command line and how the lines were
 * grouped: PIPELINING used only when offered, HELO fallback, AUTH LOGIN, multi-line replies, RSET after a
 * refused envelope, no body after a refused envelope. The same test bodies for both senders.
 */

const LOGIN = { user: 'mailroom-login', pass: 'login-app-password' };

let baseline: string[];

before(() => {
  baseline = snapshotResources();
});

after(async () => {
  await assertNoResourceLeaks(baseline);
});

async function withScriptedServer(
  kind: SenderKind,
  options: ScriptedServerOptions,
  overrides: Partial<RelayConfig>,
  body: (server: ScriptedServer, sender: Sender) => Promise<void>,
): Promise<void> {
  const server = await startScriptedServer(options);
  const sender = buildSender(kind, relayConfig(server.port, { maxConnections: 1, ...overrides }));
  try {
    await body(server, sender);
  } finally {
    sender.close();
    await server.close();
  }
}

/** The group of lines that holds the MAIL FROM of the n-th transaction (0-based). */
function mailGroup(server: ScriptedServer, n = 0): readonly string[] {
  const groups = server.groups.filter((group) => group.some((line) => line.startsWith('MAIL FROM:')));
  const group = groups[n];
  assert.ok(group, `no MAIL FROM number ${n} in ${JSON.stringify(server.groups)}`);
  return group;
}

for (const kind of SENDER_KINDS) {
  void describe(`${kind} sender: SMTP dialogue`, () => {
    void it(
      'with PIPELINING: MAIL FROM, RCPT TO and DATA go out as one group',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['PIPELINING', '8BITMIME'] }, {}, async (server, sender) => {
          const result = await attempt(sender, `uma-${kind}@example.test`);
          assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          assert.deepEqual(
            mailGroup(server).map((line) => line.split(':')[0]),
            ['MAIL FROM', 'RCPT TO', 'DATA'],
          );
          assert.equal(server.contents.length, 1);
        });
      },
    );

    void it(
      'without PIPELINING: one command at a time, even with messages queued',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['8BITMIME', 'SIZE 1000000'] }, {}, async (server, sender) => {
          const results = await Promise.all(
            ['vanna', 'walter', 'xavier'].map((name) => attempt(sender, `${name}-${kind}@example.test`)),
          );
          for (const result of results)
            assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          for (const group of server.groups) assert.equal(group.length, 1, JSON.stringify(server.groups));
          assert.equal(server.mailBehindDot, 0);
          assert.equal(server.contents.length, 3);
        });
      },
    );

    void it(
      'a relay that refuses EHLO gets HELO when nothing needs an extension',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: 'reject' }, {}, async (server, sender) => {
          const result = await attempt(sender, `xena-${kind}@example.test`);
          assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          assert.ok(server.lines.some((line) => line.startsWith('HELO ')));
          assert.equal(server.contents.length, 1);
        });
      },
    );

    void it(
      'AUTH LOGIN when it is the only mechanism; wrong credentials are a configuration fault',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const ehlo = ['PIPELINING', 'AUTH LOGIN'];
        await withScriptedServer(kind, { ehlo, login: LOGIN }, { auth: LOGIN }, async (server, sender) => {
          const result = await attempt(sender, `yuri-${kind}@example.test`);
          assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          assert.ok(server.lines.includes('AUTH LOGIN'));
          assert.equal(server.contents.length, 1);
        });
        const wrong = { user: LOGIN.user, pass: 'not-the-password' };
        await withScriptedServer(kind, { ehlo, login: LOGIN }, { auth: wrong }, async (server, sender) => {
          const result = await attempt(sender, `yuri-${kind}@example.test`);
          assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
          assert.equal(result.reason, 'auth_failed');
          assert.ok(!JSON.stringify(result.observation).includes(wrong.pass));
          assert.equal(server.contents.length, 0);
        });
      },
    );

    void it(
      'a multi-line refusal is reported whole, lines joined as nodemailer joins them',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['PIPELINING'] }, {}, async (server, sender) => {
          const result = await attempt(sender, `multiline-${kind}@example.test`);
          assert.equal(result.outcome, 'permanent', JSON.stringify(result.observation));
          assert.equal(result.reason, 'mailbox_unknown');
          assert.equal(result.observation.responseCode, 550);
          assert.equal(
            result.observation.response,
            '550-5.1.1 The email account that you tried to reach does not exist.\n550 5.1.1 Please check the address.',
          );
          assert.equal(server.contents.length, 0);
        });
      },
    );

    void it(
      'after a refused recipient the session is reset (RSET) and the next message goes through',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['PIPELINING'] }, {}, async (server, sender) => {
          const refused = await attempt(sender, `multiline-again-${kind}@example.test`);
          assert.equal(refused.outcome, 'permanent', JSON.stringify(refused.observation));
          const next = await attempt(sender, `zoe-${kind}@example.test`);
          assert.equal(next.outcome, 'delivered', JSON.stringify(next.observation));
          const secondMail = server.lines.findLastIndex((line) => line.startsWith('MAIL FROM:'));
          const firstMail = server.lines.findIndex((line) => line.startsWith('MAIL FROM:'));
          assert.ok(
            server.lines.slice(firstMail, secondMail).includes('RSET'),
            `RSET between the two transactions: ${JSON.stringify(server.lines)}`,
          );
          assert.equal(server.contents.length, 1);
        });
      },
    );

    void it(
      'a sender the relay does not permit is a configuration fault (sender_not_permitted)',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['PIPELINING'] }, {}, async (server, sender) => {
          const result = await attempt(
            sender,
            `ann-${kind}@example.test`,
            testMessage(),
            'blocked@mailroom.test',
          );
          assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
          assert.equal(result.reason, 'sender_not_permitted');
          assert.equal(result.observation.command, 'MAIL FROM');
          assert.equal((await attempt(sender, `ann-next-${kind}@example.test`)).outcome, 'delivered');
          assert.equal(server.contents.length, 1);
        });
      },
    );

    void it(
      'a relay that answers 354 to a refused envelope never gets the body',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['PIPELINING'] }, {}, async (server, sender) => {
          const body = `secret body for ${kind}\r\n`;
          const result = await attempt(sender, `lenient-${kind}@example.test`, testMessage({ body }));
          assert.equal(result.outcome, 'permanent', JSON.stringify(result.observation));
          assert.equal(result.bodyWritten, false);
          assert.ok(!server.contents.some((content) => content.includes(body)), 'the body was not sent');
          assert.equal((await attempt(sender, `after-lenient-${kind}@example.test`)).outcome, 'delivered');
        });
      },
    );
  });
}

for (const kind of SENDER_KINDS) {
  void describe(`${kind} sender: relay closing an idle connection`, () => {
    void it(
      'a 421 on an idle pooled connection retires it; the next message goes over a new one',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withScriptedServer(kind, { ehlo: ['PIPELINING'] }, {}, async (server, sender) => {
          assert.equal((await attempt(sender, `hangup-${kind}@example.test`)).outcome, 'delivered');
          await waitFor(() => server.openConnections === 0, {
            what: 'the relay to close the idle connection',
          });
          const next = await attempt(sender, `after-hangup-${kind}@example.test`);
          assert.equal(next.outcome, 'delivered', JSON.stringify(next.observation));
          assert.equal(server.contents.length, 2);
          assert.equal(server.lines.filter((line) => line.startsWith('EHLO ')).length, 2, 'two sessions');
        });
      },
    );
  });
}

void describe('pipelining sender: envelope pipelined behind the final dot', () => {
  void it(
    'with messages queued, the next MAIL FROM goes out with the previous final dot',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      await withScriptedServer('pipelining', { ehlo: ['PIPELINING'] }, {}, async (server, sender) => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => attempt(sender, `chain-${i}@example.test`)),
        );
        for (const result of results)
          assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
        assert.equal(server.contents.length, 10);
        assert.ok(server.mailBehindDot >= 5, `${server.mailBehindDot} envelopes behind a dot`);
      });
    },
  );

  void it('not when turned off (pipelineTransactions: false)', { timeout: CASE_TIMEOUT_MS }, async () => {
    const server = await startScriptedServer({ ehlo: ['PIPELINING'] });
    const sender = new PipeliningSender(relayConfig(server.port, { maxConnections: 1 }), {
      pipelineTransactions: false,
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => attempt(sender, `nochain-${i}@example.test`)),
      );
      for (const result of results)
        assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
      assert.equal(server.mailBehindDot, 0);
    } finally {
      sender.close();
      await server.close();
    }
  });
});

void describe('pipelining sender: idle connections', () => {
  void it('are closed with QUIT after idleTimeoutMs', { timeout: CASE_TIMEOUT_MS }, async () => {
    const server = await startScriptedServer({ ehlo: ['PIPELINING'] });
    const sender = new PipeliningSender(relayConfig(server.port), { idleTimeoutMs: 100 });
    try {
      assert.equal((await attempt(sender, 'idle@example.test')).outcome, 'delivered');
      await waitFor(() => server.openConnections === 0, { what: 'the idle connection to close' });
      assert.equal(server.lines.at(-1), 'QUIT');
      assert.equal(sender.connections, 0);
      assert.equal((await attempt(sender, 'idle-again@example.test')).outcome, 'delivered');
    } finally {
      sender.close();
      await server.close();
    }
  });
});

void describe('pipelining sender: SIZE', () => {
  void it(
    'announces the message size in MAIL FROM when the relay offers SIZE',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      await withScriptedServer(
        'pipelining',
        { ehlo: ['PIPELINING', 'SIZE 1000000'] },
        {},
        async (server, sender) => {
          const raw = testMessage();
          assert.equal((await attempt(sender, 'size@example.test', raw)).outcome, 'delivered');
          assert.match(mailGroup(server)[0] ?? '', new RegExp(` SIZE=${raw.length}$`));
        },
      );
    },
  );
});
