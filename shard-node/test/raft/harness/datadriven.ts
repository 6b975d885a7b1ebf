/**
 * A tiny datadriven file format, after cockroachdb/datadriven as used by etcd raft's tests:
 *
 *   # comment
 *   command arg key=value
 *   ----
 *   expected output
 *   (one blank line ends the block)
 *
 * `runDataDriven` runs each command and returns the file rewritten with the actual outputs, so
 * that a test compares it with the file, and `UPDATE_GOLDEN=1` writes it back on purpose.
 * Outputs never contain blank lines (the interpreter prints `ok` for "nothing").
 */

export interface Command {
  /** The command name, e.g. `add-nodes`. */
  readonly name: string;
  /** Positional arguments. */
  readonly args: readonly string[];
  /** key=value arguments. A value in parentheses keeps its spaces: `voters=(1 2 3)`. */
  readonly options: ReadonlyMap<string, string>;
  /** The full line, for error messages. */
  readonly line: string;
  readonly lineNumber: number;
}

function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let depth = 0;
  for (const char of line) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (char === ' ' && depth === 0) {
      if (current.length > 0) tokens.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  if (current.length > 0) tokens.push(current);
  return tokens;
}

export function parseCommand(line: string, lineNumber: number): Command {
  const [name, ...rest] = tokenize(line.trim());
  const args: string[] = [];
  const options = new Map<string, string>();
  for (const token of rest) {
    const eq = token.indexOf('=');
    if (eq > 0) options.set(token.slice(0, eq), token.slice(eq + 1));
    else args.push(token);
  }
  return { name: name ?? '', args, options, line, lineNumber };
}

/** Parses `(1,2,3)`, `(1 2 3)` or `1` into numbers. */
export function parseIdList(value: string | undefined): number[] {
  if (value === undefined) return [];
  const inner = value.replace(/^\(/, '').replace(/\)$/, '').trim();
  if (inner.length === 0) return [];
  return inner.split(/[ ,]+/).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`not an id: ${v}`);
    return n;
  });
}

/** Runs every command of `text` and returns the text with outputs regenerated. */
export function runDataDriven(text: string, run: (command: Command) => string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      out.push(line);
      i++;
      continue;
    }
    const command = parseCommand(line, i + 1);
    out.push(line);
    i++;
    // Skip the old output, if any.
    if (lines[i] === '----') {
      i++;
      while (i < lines.length && lines[i]!.trim() !== '') i++;
    }
    let output: string;
    try {
      output = run(command);
    } catch (error) {
      throw new Error(`line ${command.lineNumber}: ${command.line}: ${String(error)}`, { cause: error });
    }
    const trimmed = output.replace(/\n+$/, '');
    out.push('----');
    out.push(trimmed.length === 0 ? 'ok' : trimmed.replace(/\n\s*\n/g, '\n'));
    // Keep exactly one blank line after each block.
    if (i < lines.length && lines[i]!.trim() === '') {
      out.push('');
      i++;
    } else {
      out.push('');
    }
  }
  let result = out.join('\n');
  if (!result.endsWith('\n')) result += '\n';
  return result.replace(/\n\n+$/, '\n');
}
