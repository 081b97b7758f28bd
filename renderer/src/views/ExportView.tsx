import { exportModel, go, validateRows } from '../actions.js';
import { Empty, JobStatus, NeedsModel } from '../components.js';
import { set, useStore } from '../store.js';
import { ResultTables } from './CompileView.js';

export function pythonSnippet(path: string, inputs: string): string {
  return `import torch
import torchtvm  # registers torch.classes.torchtvm (or: torch.ops.load_library("libtorchtvm_runtime.so"))

model = torch.jit.load(${JSON.stringify(path)})
outputs = model([${inputs}])   # List[Tensor] in, List[Tensor] out
print(outputs[0].shape)`;
}

export function cppSnippet(path: string, inputs: string): string {
  return `#include <dlfcn.h>
#include <iostream>
#include <torch/script.h>

int main() {
  // The TVM runtime op: link libtorchtvm_runtime.so, or load it before torch::jit::load.
  dlopen("libtorchtvm_runtime.so", RTLD_NOW | RTLD_GLOBAL);
  torch::jit::Module model = torch::jit::load(${JSON.stringify(path)});
  c10::List<at::Tensor> inputs({${inputs}});
  auto outputs = model.forward({inputs}).toTensorList();
  std::cout << outputs.get(0).sizes() << std::endl;
}`;
}

const CPP_DTYPE: Record<string, string> = { float32: 'kFloat32', float16: 'kFloat16', bfloat16: 'kBFloat16', int64: 'kInt64', int32: 'kInt32', bool: 'kBool' };

export function ExportView() {
  const { exportPath, exportJob, exported, jobs, inputs } = useStore();
  const running = exportJob ? ['running', 'queued'].includes(jobs[exportJob]?.state ?? '') : false;
  const { specs } = validateRows(inputs);
  const out = exported?.files.exported ?? exportPath;
  const example = (specs ?? []).map((s) => {
    const dims = s.dims.map((d) => (typeof d === 'number' ? d : d.min ?? 1));
    return { py: `torch.randn(${dims.join(', ')})${s.dtype === 'float32' ? '' : `.to(torch.${s.dtype})`}`, cpp: `torch::randn({${dims.join(', ')}})${s.dtype === 'float32' ? '' : `.to(torch::${CPP_DTYPE[s.dtype]})`}` };
  });
  return (
    <section>
      <h2>Export</h2>
      <NeedsModel>
        <p className="hint">One <code>.pt</code> holding the compiled code, the weights and the metadata: any PyTorch process loads it like any TorchScript model. It is verified against PyTorch before it is written.</p>
        <div className="row">
          <input className="grow" value={exportPath} onChange={(e) => set({ exportPath: e.target.value })} aria-label="Export path" placeholder="/path/to/model.tvm.pt" />
          <button className="primary" data-testid="export-button" disabled={running || !specs || !exportPath.trim()} onClick={() => void exportModel()}>
            {running ? 'Exporting…' : 'Export (Ctrl/Cmd+E)'}
          </button>
        </div>
        {!specs && <p className="warn">Fix the <button className="link" onClick={() => go('inputs')}>input specs</button> first.</p>}
        <JobStatus jobId={exportJob} what="Export" />
        {exported ? (
          <>
            <p className="ok" data-testid="export-done">Wrote <code>{out}</code></p>
            <div className="snippets">
              <div>
                <h3>Python</h3>
                <pre className="code" data-testid="python-snippet">{pythonSnippet(out, example.map((e) => e.py).join(', '))}</pre>
              </div>
              <div>
                <h3>C++ (libtorch)</h3>
                <pre className="code" data-testid="cpp-snippet">{cppSnippet(out, example.map((e) => e.cpp).join(', '))}</pre>
              </div>
            </div>
            <details>
              <summary>Verification of the exported build</summary>
              <ResultTables r={exported} />
            </details>
          </>
        ) : (
          !running && <Empty title="Nothing exported yet"><p>Choose where to write the <code>.pt</code> and press Export; then benchmark it against the original on the Benchmark page.</p></Empty>
        )}
      </NeedsModel>
    </section>
  );
}
