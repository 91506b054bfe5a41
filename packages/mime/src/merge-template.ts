import Handlebars from 'handlebars';
import type { FieldIssue } from '@mailroom/core';

/**
 * A private Handlebars environment: helpers or partials registered on the global instance by other code
 * never reach campaign templates.
 */
const handlebars = Handlebars.create();

/** Built-in helpers a template may call; `log` is left out so a template cannot write to the console. */
const KNOWN_HELPERS = { log: false } as const;
const CONTEXT_KEEPING_HELPERS = new Set(['if', 'unless']);
const HELPERS = new Set(['if', 'unless', 'each', 'with', 'lookup']);

/** One subject, text or html field compiled once: rendered per recipient unless it has no merge fields. */
export interface MergeTemplate {
  /** Root-level variables the field reads, e.g. `name`, `user.city`. */
  readonly fields: readonly string[];
  /** The rendered text when the field has no mustache at all (rendered once, at compile time). */
  readonly staticText: string | undefined;
  /** Renders the field with one recipient's variables. Throws what Handlebars throws. */
  render(vars: object): string;
}

export interface MergeTemplateOptions {
  /** HTML-escape `{{x}}` values (html part); subject and text are not escaped. */
  readonly escapeHtml: boolean;
}

interface Scope {
  /** Context-changing blocks (`each`, `with`, sections) around this point. */
  readonly depth: number;
  readonly blockParams: readonly string[];
}

interface Walk {
  readonly fields: Set<string>;
  readonly problems: string[];
  dynamic: boolean;
}

function oneLine(message: string): string {
  return message.replace(/\s+/g, ' ').trim();
}

function addPath(path: hbs.AST.PathExpression, scope: Scope, walk: Walk): void {
  if (path.data) {
    if (path.parts[0] === 'root' && path.parts.length > 1) walk.fields.add(path.parts.slice(1).join('.'));
    return;
  }
  const head = path.parts[0];
  if (head === undefined) return; // `this`
  if (path.depth === 0 && scope.blockParams.includes(head)) return;
  if (path.depth === scope.depth) walk.fields.add(path.parts.join('.'));
}

function walkExpression(node: hbs.AST.Expression, scope: Scope, walk: Walk): void {
  if (node.type === 'PathExpression') addPath(node as hbs.AST.PathExpression, scope, walk);
  else if (node.type === 'SubExpression') walkCall(node as hbs.AST.SubExpression, scope, walk);
}

function walkCall(
  node: { params: hbs.AST.Expression[]; hash?: hbs.AST.Hash | undefined },
  scope: Scope,
  walk: Walk,
): void {
  for (const param of node.params) walkExpression(param, scope, walk);
  for (const pair of node.hash?.pairs ?? []) walkExpression(pair.value, scope, walk);
}

function helperName(path: hbs.AST.PathExpression | hbs.AST.Literal): string | undefined {
  if (path.type !== 'PathExpression') return undefined;
  const p = path as hbs.AST.PathExpression;
  return p.parts.length === 1 && !p.data && p.depth === 0 ? p.parts[0] : undefined;
}

function walkStatement(node: hbs.AST.Statement, scope: Scope, walk: Walk): void {
  switch (node.type) {
    case 'ContentStatement':
    case 'CommentStatement':
      return;
    case 'MustacheStatement': {
      const mustache = node as hbs.AST.MustacheStatement;
      walk.dynamic = true;
      const name = helperName(mustache.path);
      const isCall = mustache.params.length > 0 || (mustache.hash?.pairs.length ?? 0) > 0;
      if (isCall || (name !== undefined && HELPERS.has(name))) walkCall(mustache, scope, walk);
      else walkExpression(mustache.path, scope, walk);
      return;
    }
    case 'BlockStatement': {
      const block = node as hbs.AST.BlockStatement;
      walk.dynamic = true;
      const name = helperName(block.path);
      // `if` and `unless` keep the context; `each`, `with` and sections enter a new one.
      const inner: Scope = {
        depth: name !== undefined && CONTEXT_KEEPING_HELPERS.has(name) ? scope.depth : scope.depth + 1,
        blockParams: [...scope.blockParams, ...(block.program?.blockParams ?? [])],
      };
      if (name !== undefined && HELPERS.has(name)) walkCall(block, scope, walk);
      else walkExpression(block.path, scope, walk); // a section, {{#items}}...{{/items}}
      if (block.program) walkProgram(block.program, inner, walk);
      if (block.inverse) walkProgram(block.inverse, scope, walk);
      return;
    }
    case 'PartialStatement':
    case 'PartialBlockStatement':
      walk.problems.push('uses a partial ({{> name}}), which compiled messages do not support');
      return;
    default:
      walk.problems.push(`uses ${node.type}, which compiled messages do not support`);
  }
}

function walkProgram(program: hbs.AST.Program, scope: Scope, walk: Walk): void {
  for (const statement of program.body) walkStatement(statement, scope, walk);
}

/**
 * Parses and compiles one field as a Handlebars template (`strict: false`, built-in helpers only, no
 * partials). Returns the issues naming `field` when the source is not a valid template.
 */
export function compileMergeTemplate(
  source: string,
  field: string,
  options: MergeTemplateOptions,
): MergeTemplate | FieldIssue[] {
  let ast: hbs.AST.Program;
  try {
    ast = handlebars.parse(source);
  } catch (err) {
    return [{ field, message: `is not a valid template: ${oneLine(String((err as Error).message))}` }];
  }
  const walk: Walk = { fields: new Set(), problems: [], dynamic: false };
  walkProgram(ast, { depth: 0, blockParams: [] }, walk);
  if (walk.problems.length > 0) return walk.problems.map((message) => ({ field, message }));
  const template = handlebars.compile<object>(ast, {
    strict: false,
    noEscape: !options.escapeHtml,
    knownHelpersOnly: true,
    knownHelpers: KNOWN_HELPERS,
  });
  let emptyRender: string;
  try {
    // Handlebars compiles lazily: the first call turns compile errors (unknown helpers) into exceptions here,
    // once, instead of on the first recipient.
    emptyRender = template({});
  } catch (err) {
    return [{ field, message: `is not a valid template: ${oneLine(String((err as Error).message))}` }];
  }
  return {
    fields: [...walk.fields].sort(),
    staticText: walk.dynamic ? undefined : emptyRender,
    render: (vars) => template(vars),
  };
}
