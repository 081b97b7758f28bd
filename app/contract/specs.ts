// Input specifications, shared by the CLI, the app, the engine (as JSON) and exported metadata.
import { z } from 'zod';

export const DTYPES = ['float32', 'float16', 'bfloat16', 'int64', 'int32', 'bool'] as const;
export const DtypeSchema = z.enum(DTYPES);
export type Dtype = z.infer<typeof DtypeSchema>;

export const SymDimSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a symbol is a name like batch or seq'),
    min: z.number().int().min(1).optional(),
    max: z.number().int().min(1).optional(),
  })
  .refine((d) => d.min === undefined || d.max === undefined || d.min <= d.max, 'min must not exceed max');
export type SymDim = z.infer<typeof SymDimSchema>;

export const DimSchema = z.union([z.number().int().min(1), SymDimSchema]);
export type Dim = z.infer<typeof DimSchema>;

export const InputSpecSchema = z.object({
  name: z.string().min(1),
  dims: z.array(DimSchema),
  dtype: DtypeSchema,
  range: z.tuple([z.number(), z.number()]).refine(([lo, hi]) => lo < hi, 'range low must be below high').optional(),
});
export type InputSpec = z.infer<typeof InputSpecSchema>;

export function formatDim(d: Dim): string {
  if (typeof d === 'number') return String(d);
  return d.min !== undefined || d.max !== undefined ? `${d.name}=${d.min ?? 1}..${d.max ?? ''}` : d.name;
}

export function formatSpec(s: InputSpec): string {
  // A scalar (no dims) is written [] so that the text parses back (an empty DIMS field is refused).
  const base = `${s.name}:${s.dims.length ? s.dims.map(formatDim).join(',') : '[]'}:${s.dtype}`;
  return s.range ? `${base}:${s.range[0]}..${s.range[1]}` : base;
}

export type SpecField = 'name' | 'dims' | 'dtype' | 'range';

/** A spec that does not parse, with the field at fault so that a form can mark that one field. */
export class SpecError extends Error {
  constructor(
    readonly field: SpecField,
    message: string,
  ) {
    super(message);
    this.name = 'SpecError';
  }
}

// A symbolic size: NAME=MIN..MAX, spaces allowed only around "=" and "..".
const SYMBOL = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\d+)?\s*\.\.\s*(\d+)?$/;
export const DIMS_HELP = 'comma-separated sizes such as 1,3,224,224 (a pasted [1, 3, 224, 224] or torch.Size([1, 3, 224, 224]) works too); a symbolic size is NAME=MIN..MAX, e.g. batch=1..64';

/**
 * Parses a shape. Accepted: `1,3,224,224`, `[1, 3, 224, 224]`, `(1, 3, 224, 224)`,
 * `torch.Size([1, 3, 224, 224])`, and symbolic sizes written `NAME=MIN..MAX` (either bound may be
 * left out, `batch=..64`, but the `=..` may not: a bare word such as `abc` is refused because it is
 * far more often a typo than a wish for a dynamic size). Nothing is guessed: sizes separated by
 * spaces ("1 3 32 32", "batch=1..8 3 224 224"), other separators ("1x3", "1;3") and a trailing
 * comma outside a pasted list ("1,3,224,": is a size missing?) are refused with the fix. A pasted
 * Python list or tuple may end with a comma, as Python allows (`(8,)`). Throws a SpecError on the
 * `dims` field.
 */
export function parseDims(text: string): Dim[] {
  let t = text.trim();
  if (!t) throw new SpecError('dims', `give the dimensions: ${DIMS_HELP}.`);
  const size = /^torch\.Size\(\s*\[(.*)\]\s*\)$/s.exec(t);
  const pasted = Boolean(size) || /^\[.*\]$/s.test(t) || /^\(.*\)$/s.test(t);
  if (size) t = size[1];
  else if (pasted) t = t.slice(1, -1);
  t = t.trim();
  // An empty list is a scalar (torch.Size([])), but only when written as a list.
  if (!t) {
    if (pasted) return [];
    throw new SpecError('dims', `give the dimensions: ${DIMS_HELP}.`);
  }
  if (/,\s*$/.test(t)) {
    if (!pasted) throw new SpecError('dims', `"${text.trim()}" ends with a comma: is a size missing? Write ${t.replace(/,\s*$/, '')} if not.`);
    t = t.replace(/,\s*$/, '');
  }
  const tokens = t.split(',');
  return tokens.map((raw, i) => {
    const tok = raw.trim();
    if (!tok) throw new SpecError('dims', `"${text.trim()}" has an empty dimension (position ${i + 1}); use ${DIMS_HELP}.`);
    if (/^-?\d+$/.test(tok)) {
      const n = Number(tok);
      if (n < 1) throw new SpecError('dims', `dimension ${i + 1} is ${tok}; every size must be a positive integer (1 or more).`);
      if (!Number.isSafeInteger(n)) throw new SpecError('dims', `dimension ${i + 1} (${tok}) is too large.`);
      return n;
    }
    const m = SYMBOL.exec(tok);
    if (m) {
      const d: SymDim = { name: m[1] };
      if (m[2] !== undefined) d.min = Number(m[2]);
      if (m[3] !== undefined) d.max = Number(m[3]);
      if (d.min === 0) throw new SpecError('dims', `symbol ${d.name} must start at 1 or more, not 0.`);
      for (const b of [d.min, d.max]) if (b !== undefined && !Number.isSafeInteger(b)) throw new SpecError('dims', `symbol ${d.name}'s bound ${b} is too large.`);
      if (d.min !== undefined && d.max !== undefined && d.min > d.max) throw new SpecError('dims', `symbol ${d.name} has an empty range ${d.min}..${d.max}.`);
      return d;
    }
    // Several sizes in one comma-separated slot: "1 3 32 32", "batch=1..8 3 224 224", "1x3x32".
    const parts = tok.split(/\s+|[x×;*]/).filter(Boolean);
    if (parts.length > 1 && parts.every((p) => /^\d+$/.test(p) || SYMBOL.test(p)))
      throw new SpecError('dims', `"${tok}" holds ${parts.length} sizes without commas between them; separate dimensions with commas, e.g. ${parts.join(',')}.`);
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(tok)) throw new SpecError('dims', `dimension ${i + 1} "${tok}" is not a number; for a symbolic size give its range, e.g. ${tok}=1..64.`);
    throw new SpecError('dims', `dimension ${i + 1} "${tok}" is not a positive integer or a symbol like batch=1..64.`);
  });
}

/** `float32` or `torch.float32`; anything else is refused with the list of supported dtypes. */
export function parseDtype(text: string): Dtype {
  const t = text.trim().replace(/^torch\./, '');
  if (!(DTYPES as readonly string[]).includes(t)) throw new SpecError('dtype', `"${text.trim()}" is not a supported dtype; use one of ${DTYPES.join(', ')}.`);
  return t as Dtype;
}

export function parseName(text: string): string {
  const t = text.trim();
  if (!t) throw new SpecError('name', 'give the input a name, e.g. x.');
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(t)) throw new SpecError('name', `"${t}" is not a valid input name; use letters, digits and _ (not starting with a digit).`);
  return t;
}

export function parseRange(text: string): [number, number] | undefined {
  const t = text.trim();
  if (!t) return undefined;
  // Exponents too (1e-3..1e3): that is how a range's bounds print once they are large or small.
  const m = /^(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)$/.exec(t);
  if (!m) throw new SpecError('range', `"${t}" is not a value range; write LO..HI, e.g. -1..1 or 0..1000.`);
  if (!Number.isFinite(Number(m[1])) || !Number.isFinite(Number(m[2]))) throw new SpecError('range', `the value range ${t.length > 60 ? `${t.slice(0, 60)}…` : t} has a bound too large for a number; use bounds below 1e308.`);
  if (Number(m[1]) >= Number(m[2])) throw new SpecError('range', `the value range ${t} is empty; LO must be below HI.`);
  return [Number(m[1]), Number(m[2])];
}

export interface SpecFields {
  name: string;
  dims: string;
  dtype: string;
  range?: string;
}

/** Parses a spec given field by field (the app's input table). Every field is checked, so a form can mark each bad one. */
export function parseSpecFields(f: SpecFields): { spec: InputSpec | null; errors: Partial<Record<SpecField, string>> } {
  const errors: Partial<Record<SpecField, string>> = {};
  const attempt = <T,>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof SpecError) errors[e.field] = e.message;
      else throw e;
      return undefined;
    }
  };
  const name = attempt(() => parseName(f.name));
  const dims = attempt(() => parseDims(f.dims));
  const dtype = attempt(() => parseDtype(f.dtype));
  const range = attempt(() => parseRange(f.range ?? ''));
  if (Object.keys(errors).length || name === undefined || dims === undefined || dtype === undefined) return { spec: null, errors };
  return { spec: InputSpecSchema.parse({ name, dims, dtype, ...(range ? { range } : {}) }), errors };
}

/**
 * Parses the CLI form NAME:DIMS:DTYPE[:LO..HI] (`--input`), with the same rules as the app's input
 * table (parseSpecFields). Throws an Error whose message names the field at fault.
 */
export function parseSpec(text: string): InputSpec {
  const form = 'NAME:DIMS:DTYPE[:LO..HI], e.g. x:1,3,224,224:float32 or ids:batch=1..8,32:int64:0..1000';
  const parts = text.split(':');
  if (parts.length < 3 || parts.length > 4) throw new Error(`--input "${text}" is not an input spec; use ${form}.`);
  const [name, dims, dtype, range] = parts;
  const r = parseSpecFields({ name, dims, dtype, range });
  if (!r.spec) throw new Error(`--input "${text}": ${Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(' ')}`);
  return r.spec;
}
