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
  const base = `${s.name}:${s.dims.map(formatDim).join(',')}:${s.dtype}`;
  return s.range ? `${base}:${s.range[0]}..${s.range[1]}` : base;
}

/**
 * Parses the CLI/table form NAME:DIMS:DTYPE[:LO..HI], DIMS comma-separated numbers or symbols
 * (`batch`, `batch=1..64`). Throws an Error whose message says what is wrong and the expected form.
 */
export function parseSpec(text: string): InputSpec {
  const form = 'NAME:DIMS:DTYPE[:LO..HI], e.g. x:1,3,224,224:float32 or ids:batch=1..8,32:int64:0..1000';
  const parts = text.split(':');
  if (parts.length < 3 || parts.length > 4) throw new Error(`"${text}" is not an input spec; use ${form}.`);
  const [name, dimsText, dtype, rangeText] = parts;
  if (!name) throw new Error(`"${text}" has no input name; use ${form}.`);
  if (!(DTYPES as readonly string[]).includes(dtype)) {
    throw new Error(`"${text}": dtype "${dtype}" is not supported; use one of ${DTYPES.join(', ')}.`);
  }
  const dims: Dim[] = dimsText.split(',').map((tok) => {
    const t = tok.trim();
    if (/^\d+$/.test(t) && Number(t) >= 1) return Number(t);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(\d+)?\.\.(\d+)?)?$/.exec(t);
    if (!m) throw new Error(`"${text}": dimension "${t}" must be a positive integer or a symbol like batch or batch=1..64.`);
    const d: SymDim = { name: m[1] };
    if (m[2] !== undefined) d.min = Number(m[2]);
    if (m[3] !== undefined) d.max = Number(m[3]);
    if (d.min !== undefined && d.max !== undefined && d.min > d.max) throw new Error(`"${text}": symbol ${d.name} has an empty range ${d.min}..${d.max}.`);
    if (d.min === 0) throw new Error(`"${text}": symbol ${d.name} must start at 1 or more.`);
    return d;
  });
  let range: [number, number] | undefined;
  if (rangeText !== undefined) {
    const m = /^(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)$/.exec(rangeText);
    if (!m || Number(m[1]) >= Number(m[2])) throw new Error(`"${text}": value range "${rangeText}" must be LO..HI with LO < HI.`);
    range = [Number(m[1]), Number(m[2])];
  }
  return InputSpecSchema.parse({ name, dims, dtype, ...(range ? { range } : {}) });
}
