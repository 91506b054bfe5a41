import { z } from 'zod';
import { ConfigError, type FieldIssue } from '@mailroom/core';

/** One environment variable: its schema, its default as written in docs, and what it means. */
export interface Setting<T extends z.ZodType = z.ZodType> {
  readonly schema: T;
  /** The default, as the README's configuration table shows it; undefined means required or optional. */
  readonly default?: string;
  readonly required?: boolean;
  /** A secret (password, token, key): its value is never echoed back in an error. */
  readonly secret?: boolean;
  readonly doc: string;
}

export type SettingsSpec = Record<string, Setting>;

export type SettingsValues<S extends SettingsSpec> = { readonly [K in keyof S]: z.output<S[K]['schema']> };

export function setting<T extends z.ZodType>(schema: T, meta: Omit<Setting<T>, 'schema'>): Setting<T> {
  return { schema, ...meta };
}

/** Booleans are written `true` or `false`, nothing else, so a typo never flips a safety setting. */
export const booleanString = z.enum(['true', 'false']).transform((v) => v === 'true');

/**
 * Reads the settings from an environment object once. Every problem is collected and thrown together as a
 * ConfigError whose issues are named by variable (`MAILROOM_X: reason`). Empty strings count as unset.
 */
export function loadSettings<S extends SettingsSpec>(spec: S, env: NodeJS.ProcessEnv): SettingsValues<S> {
  const issues: FieldIssue[] = [];
  const values: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) {
    const raw = env[name];
    const input = raw === undefined || raw === '' ? s.default : raw;
    if (input === undefined) {
      if (s.required) issues.push({ field: name, message: 'is required' });
      else values[name] = undefined;
      continue;
    }
    const parsed = s.schema.safeParse(input);
    if (parsed.success) values[name] = parsed.data;
    else {
      for (const issue of parsed.error.issues)
        issues.push({ field: name, message: describeIssue(issue, s.secret ? undefined : input) });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze(values) as SettingsValues<S>;
}

function describeIssue(issue: z.core.$ZodIssue, input: string | undefined): string {
  const got = input === undefined ? '' : ` (got "${input}")`;
  if (issue.code === 'invalid_value') {
    return `must be one of ${issue.values.map((v) => String(v)).join(', ')}${got}`;
  }
  return `${issue.message}${got}`;
}

/** The configuration table for docs: one row per variable. */
export function settingsTable(spec: SettingsSpec): string {
  const rows = Object.entries(spec).map(([name, s]) => {
    const dflt = s.default === undefined ? (s.required ? '(required)' : '(unset)') : `\`${s.default}\``;
    return `| \`${name}\` | ${dflt} | ${s.doc} |`;
  });
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}
