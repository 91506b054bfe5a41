import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addressDomain,
  MAX_ADDRESS_OCTETS,
  MAX_LOCAL_PART_OCTETS,
  parseMailbox,
  ValidationError,
  type FieldIssue,
} from '@mailroom/core';

/** The issues parseMailbox throws for `value`, failing the test if it does not throw a ValidationError. */
function issuesOf(value: unknown, field = 'to'): readonly FieldIssue[] {
  try {
    parseMailbox(value, field);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `ValidationError expected, got ${String(err)}`);
    assert.ok(err.issues.length > 0);
    return err.issues;
  }
  assert.fail(`expected ${JSON.stringify(value)} to be refused`);
}

/** Asserts `value` is refused with one issue on `field` whose message matches `reason`. */
function refuses(value: unknown, reason: RegExp, field = 'to', expectedField = field): void {
  const issues = issuesOf(value, field);
  assert.ok(
    issues.some((issue) => issue.field === expectedField && reason.test(issue.message)),
    `expected ${expectedField}: ${String(reason)}, got ${JSON.stringify(issues)}`,
  );
}

const local64 = 'a'.repeat(64);
/** `l@ddd...`: an address of exactly `octets` octets, its domain made of labels of at most 63 octets. */
function addressOfLength(octets: number): string {
  const labels: string[] = [];
  let remaining = octets - 2;
  while (remaining > 0) {
    if (labels.length > 0) remaining -= 1;
    const take = Math.min(63, remaining);
    labels.push('d'.repeat(take));
    remaining -= take;
  }
  return `l@${labels.join('.')}`;
}

void describe('parseMailbox: accepted forms', () => {
  void it('a bare address, domain lower-cased, local part kept as given', () => {
    assert.deepEqual(parseMailbox('Jane.Doe+tag@Example.COM', 'to'), { address: 'Jane.Doe+tag@example.com' });
  });

  void it('Display Name <address>', () => {
    assert.deepEqual(parseMailbox('Jane Doe <jane@example.com>', 'from'), {
      name: 'Jane Doe',
      address: 'jane@example.com',
    });
  });

  void it('a double-quoted display name may hold commas, colons, @ and escaped quotes', () => {
    assert.deepEqual(parseMailbox('"Doe, Jane: \\"JD\\" @ Work" <jane@example.com>', 'from'), {
      name: 'Doe, Jane: "JD" @ Work',
      address: 'jane@example.com',
    });
  });

  void it('a UTF-8 display name', () => {
    assert.deepEqual(parseMailbox('Jürgen Müller <j@example.de>', 'from'), {
      name: 'Jürgen Müller',
      address: 'j@example.de',
    });
  });

  void it('an object { name, address } and { address }', () => {
    assert.deepEqual(parseMailbox({ name: ' Ops ', address: 'ops@example.org' }, 'replyTo'), {
      name: 'Ops',
      address: 'ops@example.org',
    });
    assert.deepEqual(parseMailbox({ address: 'ops@example.org' }, 'replyTo'), { address: 'ops@example.org' });
  });

  void it('an empty display name is dropped', () => {
    assert.deepEqual(parseMailbox('<a@example.com>', 'to'), { address: 'a@example.com' });
    assert.deepEqual(parseMailbox('"" <a@example.com>', 'to'), { address: 'a@example.com' });
  });

  void it('a quoted local part of printable ASCII', () => {
    assert.deepEqual(parseMailbox('"john.smith!"@example.com', 'to'), {
      address: '"john.smith!"@example.com',
    });
  });

  void it('atext specials in a dot-atom local part', () => {
    const local = "a!#$%&'*+-/=?^_`{|}~z";
    assert.equal(parseMailbox(`${local}@example.com`, 'to').address, `${local}@example.com`);
  });

  void it('an IDN domain becomes lower-case punycode', () => {
    assert.equal(parseMailbox('info@Bücher.Example', 'to').address, 'info@xn--bcher-kva.example');
    assert.equal(parseMailbox('a@例え.テスト', 'to').address, 'a@xn--r8jz45g.xn--zckzah');
  });

  void it(`a ${MAX_LOCAL_PART_OCTETS}-octet local part and a ${MAX_ADDRESS_OCTETS}-octet address`, () => {
    assert.equal(parseMailbox(`${local64}@example.com`, 'to').address, `${local64}@example.com`);
    const longest = addressOfLength(MAX_ADDRESS_OCTETS);
    assert.equal(Buffer.byteLength(longest), MAX_ADDRESS_OCTETS);
    assert.equal(parseMailbox(longest, 'to').address, longest);
  });

  void it('addressDomain returns the lower-case ASCII domain', () => {
    assert.equal(addressDomain('x@Mail.Example.COM'), 'mail.example.com');
    assert.equal(addressDomain('x@bücher.example'), 'xn--bcher-kva.example');
    assert.throws(() => addressDomain('no-at-sign'), ValidationError);
  });
});

void describe('parseMailbox: rejections name the field', () => {
  void it('CR LF header injection in a bare address', () => {
    refuses('a@example.com\r\nBcc: victim@example.org', /control character \(U\+000D\)/);
  });

  void it('LF in a display name', () => {
    refuses('Jane\nBcc: x@example.org <a@example.com>', /control character \(U\+000A\)/, 'from');
  });

  void it('control characters: NUL, TAB, DEL, C1 (U+0085) and U+2028/U+2029', () => {
    const cases: [string, string][] = [
      ['\u0000', 'U+0000'],
      ['\t', 'U+0009'],
      ['\u007f', 'U+007F'],
      ['\u0085', 'U+0085'],
      ['\u2028', 'U+2028'],
      ['\u2029', 'U+2029'],
    ];
    for (const [char, name] of cases) {
      refuses(
        `Ja${char}ne <a@example.com>`,
        new RegExp(`control character \\(${name.replace('+', '\\+')}\\)`),
      );
      refuses(`a${char}b@example.com`, new RegExp(name.replace('+', '\\+')));
    }
  });

  void it('U+2028 in an object name names field.name', () => {
    refuses({ name: 'Jane\u2028Doe', address: 'a@example.com' }, /U\+2028/, 'from', 'from.name');
  });

  void it('two addresses (comma list), in either form', () => {
    refuses('a@example.com, b@example.com', /exactly one mailbox, not a list/);
    refuses('A <a@example.com>, B <b@example.com>', /not a list/);
    refuses('A <a@example.com> <b@example.com>', /exactly one mailbox/);
    refuses(['a@example.com'], /single mailbox, not a list/);
  });

  void it('a group', () => {
    refuses('friends: a@example.com, b@example.com;', /groups/);
    refuses('undisclosed-recipients:;', /groups/);
  });

  void it('a source route', () => {
    refuses('<@relay.example:a@example.com>', /source routes/);
  });

  for (const char of ['@', ',', ';', '<', '>']) {
    void it(`a quoted local part containing ${char}`, () => {
      const issues = issuesOf(`"a${char}b"@example.com`);
      assert.equal(issues[0]?.field, 'to');
      assert.match(issues[0]?.message ?? '', new RegExp(`quoted local part contains "${char}"|"${char}"`));
    });
  }

  void it('a quoted local part with a space, a backslash or nothing', () => {
    refuses('"a b"@example.com', /whitespace/);
    refuses('"a\\"b"@example.com', /backslash/);
    refuses('""@example.com', /quoted local part is empty/);
  });

  void it('a 65-octet local part', () => {
    refuses(`${'a'.repeat(65)}@example.com`, /local part is longer than 64 octets \(65\)/);
  });

  void it('a 255-octet address', () => {
    const address = addressOfLength(255);
    assert.equal(Buffer.byteLength(address), 255);
    refuses(address, /longer than 254 octets \(255\)/);
  });

  void it('an address over 254 octets only after punycode', () => {
    // 'aaaaaaaaaü' is 11 UTF-8 octets but 17 as punycode: the limit applies to the converted form.
    const domain = `${Array.from({ length: 12 }, () => 'aaaaaaaaaü').join('.')}.example`;
    const address = `${'l'.repeat(40)}@${domain}`;
    assert.equal(Buffer.byteLength(address), 192);
    refuses(address, /longer than 254 octets \(264\)/);
  });

  void it('a domain literal', () => {
    refuses('a@[192.0.2.1]', /domain literals/);
    refuses('a@[IPv6:2001:db8::1]', /domain literals|groups/);
  });

  void it('a single-label domain', () => {
    refuses('root@localhost', /at least two labels/);
  });

  void it('a numeric top-level label (a bare IP address)', () => {
    refuses('a@192.0.2.1', /numeric label/);
  });

  void it('bad domain labels', () => {
    refuses('a@-bad.example', /hyphen/);
    refuses('a@bad-.example', /hyphen/);
    refuses('a@under_score.example', /domain contains "_"/);
    refuses('a@a..example', /consecutive dots/);
    refuses(`a@${'d'.repeat(64)}.example`, /longer than 63 octets/);
    refuses('a@example.com.', /ends with a dot/);
    refuses('a@xn--zz.example', /not a valid/);
    refuses('a@a%41.example', /domain contains "%"/);
  });

  void it('a non-ASCII local part (needs SMTPUTF8)', () => {
    refuses('jürgen@example.de', /requires SMTPUTF8, which is not supported/);
  });

  void it('dot-atom violations', () => {
    refuses('.a@example.com', /starts with a dot/);
    refuses('a.@example.com', /ends with a dot/);
    refuses('a..b@example.com', /consecutive dots/);
    refuses('a(b)@example.com', /local part contains "\("/);
  });

  void it('missing or doubled @, whitespace, empty', () => {
    refuses('example.com', /missing "@domain"/);
    refuses('a@b@example.com', /more than one "@"/);
    refuses('a @example.com', /whitespace/);
    refuses('', /is empty/);
    refuses('   ', /is empty/);
    refuses(undefined, /is required/);
    refuses(42, /must be an address string/);
  });

  void it('unbalanced angle brackets, text after the address, unquoted specials in names', () => {
    refuses('Jane <a@example.com', /without a matching ">"/);
    refuses('a@example.com>', /without a matching "<"/);
    refuses('Jane <a@example.com> trailing', /exactly one mailbox/);
    refuses('jane@example.com <a@example.com>', /contains "@" outside quotes/, 'to', 'to.name');
    refuses('Jane (work) <a@example.com>', /contains "\(" outside quotes/, 'to', 'to.name');
  });

  void it('a display name over 200 characters', () => {
    refuses(`${'n'.repeat(201)} <a@example.com>`, /longer than 200 characters/, 'from', 'from.name');
    assert.equal(parseMailbox(`${'n'.repeat(200)} <a@example.com>`, 'from').name?.length, 200);
  });

  void it('object form: unknown keys, wrong types, display form in address', () => {
    refuses({ address: 'a@example.com', cc: 'b@example.com' }, /not a recognised field/, 'to', 'to.cc');
    refuses({ name: 5, address: 'a@example.com' }, /must be a string/, 'to', 'to.name');
    refuses({ name: 'A' }, /is required/, 'to', 'to.address');
    refuses({ address: 'A <a@example.com>' }, /whitespace/, 'to', 'to.address');
  });

  void it('every issue names the field it was given', () => {
    for (const field of ['from', 'to', 'replyTo']) {
      const issues = issuesOf('bad', field);
      assert.ok(issues.every((issue) => issue.field === field || issue.field.startsWith(`${field}.`)));
    }
    assert.match(
      issuesOf('x@localhost', 'replyTo').map((i) => `${i.field}: ${i.message}`)[0] ?? '',
      /^replyTo: /,
    );
  });
});
