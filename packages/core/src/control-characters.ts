/**
 * Characters that must never reach a header: C0 controls (including CR, LF, NUL and TAB), DEL, C1 controls
 * and the Unicode line and paragraph separators, which some software treats as line breaks.
 */
function isControlCharacter(codeUnit: number): boolean {
  return (
    codeUnit <= 0x1f || (codeUnit >= 0x7f && codeUnit <= 0x9f) || codeUnit === 0x2028 || codeUnit === 0x2029
  );
}

/** `U+000A` style name of a UTF-16 code unit. */
export function codePointName(codeUnit: number): string {
  return `U+${codeUnit.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The first control character in `value`, named as `U+XXXX`, or undefined when there is none. */
export function findControlCharacter(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (isControlCharacter(unit)) return codePointName(unit);
  }
  return undefined;
}

/** `contains a control character (U+000A)` for the first one found, else undefined. */
export function controlCharacterProblem(value: string): string | undefined {
  const found = findControlCharacter(value);
  return found === undefined ? undefined : `contains a control character (${found})`;
}
