import { useState } from 'react';
import { DTYPES, formatDim, type InputSpec, type SpecField } from '../../../app/contract/specs.js';
import { checkRows, go } from '../actions.js';
import { NeedsModel } from '../components.js';
import { set, useStore, type InputRow } from '../store.js';

/** The parsed spec, as the engine will get it: what "1,3,224,224" became. */
export function SpecChip({ spec }: { spec: InputSpec }) {
  const dims = spec.dims.map(formatDim);
  return (
    <span className="chip" data-testid="spec-chip" title="What the engine gets for this input">
      {spec.name}: [{dims.join(', ')}] {spec.dtype}
      {spec.dims.some((d) => typeof d !== 'number') ? ' · symbolic' : ''}
    </span>
  );
}

const FIELDS: SpecField[] = ['name', 'dims', 'dtype', 'range'];

export function InputsView() {
  const rows = useStore((s) => s.inputs);
  const { checks, specs } = checkRows(rows);
  // Errors show for fields the user has edited (or after pressing Next), never on a fresh form.
  const [touched, setTouched] = useState<Record<string, boolean>>({});
  const [tried, setTried] = useState(false);
  const shown = (i: number, f: SpecField) => (tried || touched[`${i}.${f}`]) && checks[i]?.fields[f];
  const update = (i: number, field: SpecField, patch: Partial<InputRow>) => {
    setTouched((t) => ({ ...t, [`${i}.${field}`]: true }));
    set({ inputs: rows.map((r, k) => (k === i ? { ...r, ...patch } : r)) });
  };
  const cell = (i: number, f: SpecField) => ({
    'aria-invalid': shown(i, f) ? true : undefined,
    'aria-describedby': shown(i, f) ? `err-${i}-${f}` : undefined,
    className: shown(i, f) ? 'invalid' : undefined,
  });
  return (
    <section>
      <h2>Inputs</h2>
      <NeedsModel>
        <p className="hint">
          One row per model input. Dimensions are comma-separated sizes, e.g. <code>1,3,224,224</code>; a pasted <code>[1, 3, 224, 224]</code> or <code>torch.Size([1, 3, 224, 224])</code> works too. A symbolic size is a name with its range, e.g. <code>batch=1..8,3,224,224</code>: one compiled module then serves every size in the range. The value range (e.g. <code>0..1000</code>) is used for random test inputs.
        </p>
        <table className="inputs-table" data-testid="inputs-table">
          <thead>
            <tr><th>name</th><th>dims</th><th>dtype</th><th>value range</th><th>parsed</th><th /></tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                <td><input aria-label={`input ${i} name`} value={r.name} onChange={(e) => update(i, 'name', { name: e.target.value })} {...cell(i, 'name')} /></td>
                <td><input aria-label={`input ${i} dims`} value={r.dims} placeholder="e.g. 1,3,224,224" onChange={(e) => update(i, 'dims', { dims: e.target.value })} {...cell(i, 'dims')} /></td>
                <td>
                  <select aria-label={`input ${i} dtype`} value={r.dtype} onChange={(e) => update(i, 'dtype', { dtype: e.target.value })} {...cell(i, 'dtype')}>
                    {DTYPES.map((d) => <option key={d}>{d}</option>)}
                  </select>
                </td>
                <td><input aria-label={`input ${i} range`} value={r.range} placeholder="optional, e.g. -1..1" onChange={(e) => update(i, 'range', { range: e.target.value })} {...cell(i, 'range')} /></td>
                <td>{checks[i]?.spec ? <SpecChip spec={checks[i].spec!} /> : <span className="hint">–</span>}</td>
                <td><button className="link" onClick={() => set({ inputs: rows.filter((_, k) => k !== i) })} aria-label={`remove input ${i}`}>remove</button></td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.map((_, i) =>
          FIELDS.map((f) => {
            const msg = shown(i, f);
            return msg ? <p key={`${i}.${f}`} id={`err-${i}-${f}`} className="field-error" role="alert" data-testid="input-error" data-field={f}>Input {i + 1} ({rows[i].name.trim() || 'unnamed'}), {f}: {msg}</p> : null;
          }),
        )}
        {!rows.length && <p className="warn">The model needs at least one input: add a row.</p>}
        {rows.length > 0 && !specs && !tried && !Object.keys(touched).length && <p className="hint">Fill in the dimensions of each input to compile.</p>}
        <div className="row">
          <button onClick={() => set({ inputs: [...rows, { name: `x${rows.length}`, dims: '', dtype: 'float32', range: '' }] })}>Add input</button>
          <button className="primary" onClick={() => (specs ? go('compile') : setTried(true))}>Next: compile →</button>
          {specs && <span className="ok">✓ {specs.length} input{specs.length > 1 ? 's' : ''} valid</span>}
        </div>
      </NeedsModel>
    </section>
  );
}
