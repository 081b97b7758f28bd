import { DTYPES } from '../../../app/contract/specs.js';
import { go, validateRows } from '../actions.js';
import { NeedsModel } from '../components.js';
import { set, useStore, type InputRow } from '../store.js';

export function InputsView() {
  const rows = useStore((s) => s.inputs);
  const { errors, specs } = validateRows(rows);
  const update = (i: number, patch: Partial<InputRow>) => set({ inputs: rows.map((r, k) => (k === i ? { ...r, ...patch } : r)) });
  return (
    <section>
      <h2>Inputs</h2>
      <NeedsModel>
        <p className="hint">
          One row per model input. A dimension is a number or a symbol with an optional range, e.g. <code>batch=1..8,3,224,224</code>: one compiled module then serves every size in the range. The value range (e.g. <code>0..1000</code>) is used for random test inputs.
        </p>
        <table className="inputs-table" data-testid="inputs-table">
          <thead>
            <tr><th>name</th><th>dims</th><th>dtype</th><th>value range</th><th /></tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i} className={errors[i] ? 'invalid' : ''}>
                <td><input aria-label={`input ${i} name`} value={r.name} onChange={(e) => update(i, { name: e.target.value })} /></td>
                <td><input aria-label={`input ${i} dims`} value={r.dims} placeholder="1,3,224,224" onChange={(e) => update(i, { dims: e.target.value })} /></td>
                <td>
                  <select aria-label={`input ${i} dtype`} value={r.dtype} onChange={(e) => update(i, { dtype: e.target.value })}>
                    {DTYPES.map((d) => <option key={d}>{d}</option>)}
                  </select>
                </td>
                <td><input aria-label={`input ${i} range`} value={r.range} placeholder="optional, e.g. -1..1" onChange={(e) => update(i, { range: e.target.value })} /></td>
                <td><button className="link" onClick={() => set({ inputs: rows.filter((_, k) => k !== i) })} aria-label={`remove input ${i}`}>remove</button></td>
              </tr>
            ))}
          </tbody>
        </table>
        {errors.map((e, i) => e && <p key={i} className="field-error" role="alert" data-testid="input-error">Input {i + 1}: {e}</p>)}
        {!rows.length && <p className="warn">The model needs at least one input: add a row.</p>}
        <div className="row">
          <button onClick={() => set({ inputs: [...rows, { name: `x${rows.length}`, dims: '1', dtype: 'float32', range: '' }] })}>Add input</button>
          <button className="primary" disabled={!specs} onClick={() => go('compile')}>Next: compile →</button>
          {specs && <span className="ok">✓ {specs.length} input{specs.length > 1 ? 's' : ''} valid</span>}
        </div>
      </NeedsModel>
    </section>
  );
}
