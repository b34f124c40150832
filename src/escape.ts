/**
 * Text a traced process or the user controls, made safe for a terminal: what
 * would act on the terminal instead of being shown (C0 and C1 controls, DEL,
 * line and paragraph separators, format characters such as U+202E RIGHT-TO-LEFT
 * OVERRIDE) is written as a C-style escape, the way `ss` and `ps` make such
 * bytes visible: `\n`, `\r`, `\t`, `\x1b` (other C0 controls and DEL),
 * `\u009b` (everything else), and a backslash as `\\` so that an escape cannot
 * be forged. Anything else, printable Unicode included, is left as it is.
 */

/** What needs escaping: backslash, controls (C0, DEL, C1), format characters, line/paragraph separators. */
const UNSAFE = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const UNSAFE_ALL = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

const NAMED: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.codePointAt(0) ?? 0;
  if (code < 0x80) return `\\x${code.toString(16).padStart(2, '0')}`;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `s` with every character that could act on a terminal escaped (see the module doc); `s` itself when there is none. */
export function visible(s: string): string {
  return UNSAFE.test(s) ? s.replace(UNSAFE_ALL, escapeOne) : s;
}
