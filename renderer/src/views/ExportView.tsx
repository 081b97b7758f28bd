import type { ReactNode } from 'react';
import type { AppInfo } from '../../../app/contract/api.js';
import type { ErrorInfo } from '../../../app/contract/errors.js';
import type { CompileResult } from '../../../app/contract/results.js';
import { describeBuild } from '../../../app/contract/builds.js';
import { fmtMs } from '../../../app/contract/format.js';
import { checkRows, exportModel, go } from '../actions.js';
import { availableBuilds, buildSource, selectedBuild, type BuildEntry } from '../builds.js';
import { CopyButton, Empty, JobStatus, NeedsModel } from '../components.js';
import { set, useStore } from '../store.js';
import { ResultTables } from './CompileView.js';

type Runtime = NonNullable<AppInfo['runtime']>;
const FALLBACK_RUNTIME: Runtime = { library: '/path/to/libtorchtvm_runtime.so', pythonPath: '/path/to/torchtvm-workbench/native/engine', python: 'python' };

/**
 * Python that works from a fresh shell: it names the runtime library by its absolute path (and
 * says how to find it again), rather than assuming `import torchtvm` is importable there.
 */
export function pythonSnippet(path: string, inputs: string, rt: Runtime = FALLBACK_RUNTIME): string {
  return `import torch

# The TVM runtime op. Either load the library by path (works in any Python with torch) ...
torch.ops.load_library(${JSON.stringify(rt.library)})
# ... or run with PYTHONPATH=${rt.pythonPath} and \`import torchtvm\` instead.
# To find the library again from a shell:
#   PYTHONPATH=${rt.pythonPath} ${rt.python} -c "import torchtvm.common.runtime_library as r; print(r.library_path())"

model = torch.jit.load(${JSON.stringify(path)})
y = model(${inputs})   # the original model's arguments in, its output structure out
print(y.shape if isinstance(y, torch.Tensor) else [t.shape for t in y])`;
}

export function cppSnippet(path: string, inputs: string, rt: Runtime = FALLBACK_RUNTIME): string {
  return `#include <dlfcn.h>
#include <iostream>
#include <torch/script.h>

int main() {
  // The TVM runtime op must be registered before torch::jit::load (or link the library instead).
  if (!dlopen(${JSON.stringify(rt.library)}, RTLD_NOW | RTLD_GLOBAL)) {
    std::cerr << "cannot load libtorchtvm_runtime.so: " << dlerror() << std::endl;
    return 1;
  }
  torch::jit::Module model = torch::jit::load(${JSON.stringify(path)});
  // The original model's arguments in, its output structure out (a tensor, or a tuple of them).
  c10::IValue y = model.forward({${inputs}});
  if (y.isTensor()) std::cout << y.toTensor().sizes() << std::endl;
  else std::cout << y.toTuple()->elements().size() << " outputs" << std::endl;
}`;
}

const CPP_DTYPE: Record<string, string> = { float32: 'kFloat32', float16: 'kFloat16', bfloat16: 'kBFloat16', int64: 'kInt64', int32: 'kInt32', bool: 'kBool' };

/** "tuned (N trials from DIR)" or "untuned", plus the placement when the build reports one. */
export function buildLabel(r: CompileResult): string {
  const t = r.tuning;
  const tuned = t ? `tuned (${t.trials} trial${t.trials === 1 ? '' : 's'} from ${t.work_dir})` : 'untuned';
  const p = r.placement;
  if (!p?.ops.length) return p ? `${tuned}; placement ${p.mode}` : tuned;
  const n = (w: string) => p.ops.filter((o) => o.where === w).length;
  const parts = [['library kernels', n('library')], ['TVM kernels', n('tvm')], ['TorchScript', n('torchscript')]].filter(([, k]) => (k as number) > 0).map(([w, k]) => `${k} on ${w}`);
  return `${tuned}; placement ${p.mode}, heavy ops: ${parts.join(', ')}`;
}

/** Refusals about the export path that the user fixes by editing the path (or by confirming). */
const PATH_REFUSALS = new Set(['folder_missing', 'export_exists', 'export_is_source', 'export_is_folder', 'export_not_file', 'not_a_folder', 'not_writable', 'path_not_allowed']);

const parentOf = (p: string) => p.replace(/[/\\]+[^/\\]*$/, '') || '/';

/** A sentence with `backticked` commands shown as code. */
const withCode = (text: string) => text.split('`').map((part, i) => (i % 2 ? <code key={i}>{part}</code> : part));

/**
 * A refused export in the app's words, with the button that answers it: create the missing folder,
 * replace a file the workbench did not write, or go back to the default path. Other failures keep
 * the engine's own sentence (null).
 */
function ExportRefusal({ error, path, defaultPath }: { error: ErrorInfo; path: string; defaultPath?: string }) {
  const useDefault = defaultPath && defaultPath !== path ? <button onClick={() => set({ exportPath: defaultPath, exportJob: undefined })}>Use the default path</button> : null;
  let text: ReactNode;
  let action: ReactNode = null;
  if (error.code === 'folder_missing') {
    const folder = error.detail || parentOf(path);
    text = (
      <>
        <b>The folder <code>{folder}</code> does not exist</b>, so nothing was exported. Folders are never created without asking, so that a mistyped path does not leave new folders behind.
      </>
    );
    action = <button className="primary" data-testid="export-create-folder" onClick={() => void exportModel({ create_parent: true })}>Create folder and export</button>;
  } else if (error.code === 'export_exists') {
    text = (
      <>
        <b>A file is already at <code>{error.detail || path}</code></b>, and it was not written by TorchTVM Workbench, so it was left alone. Replace it, or choose another file name.
      </>
    );
    action = <button className="danger" data-testid="export-replace" onClick={() => void exportModel({ overwrite: true })}>Replace the file and export</button>;
  } else if (error.code === 'export_is_source') {
    text = (
      <>
        <b><code>{error.detail || path}</code> is the model you opened</b>: exporting there would replace it. Choose another file name.
      </>
    );
  } else if (error.code === 'path_not_allowed') {
    text = (
      <>
        <b>This server may not write to <code>{path}</code>.</b> {withCode(error.message.replace(/^.*?; choose/, 'Choose'))}
      </>
    );
  } else {
    text = <b>{error.message}</b>;
  }
  return (
    <div className="error-box refusal" role="alert" data-testid="export-refusal" data-code={error.code}>
      <p>{text}</p>
      {(action || useDefault) && <div className="row">{action}{useDefault}</div>}
    </div>
  );
}

/** "0.081 ms p50, verified" for a build's line in the picker. */
function buildFacts(b: BuildEntry): string {
  const r = b.result;
  const p50 = r.latency_ms?.tvm.p50;
  const v = r.verification;
  return `${p50 !== undefined ? `${fmtMs(p50)} p50, ` : ''}${v.skipped ? 'not verified here' : v.ok ? 'verified' : 'differs from PyTorch'}`;
}

export function ExportView() {
  const state = useStore();
  const { exportPath, exportJob, exported, jobs, inputs, project, info } = state;
  const running = exportJob ? ['running', 'queued'].includes(jobs[exportJob]?.state ?? '') : false;
  const outcome = exportJob ? jobs[exportJob]?.outcome : undefined;
  // A refused path goes away as soon as the path is edited: it was about the old one.
  const refusedPath = outcome?.state === 'failed' && PATH_REFUSALS.has(outcome.error.code);
  const { specs } = checkRows(inputs);
  const builds = availableBuilds(state, specs);
  const chosen = selectedBuild(state, builds);
  const out = exported?.files.exported ?? exportPath;
  const rt = info?.runtime ?? FALLBACK_RUNTIME;
  const example = (specs ?? []).map((s) => {
    const dims = s.dims.map((d) => (typeof d === 'number' ? d : d.min ?? 1));
    return { py: `torch.randn(${dims.join(', ')})${s.dtype === 'float32' ? '' : `.to(torch.${s.dtype})`}`, cpp: `torch::randn({${dims.join(', ')}})${s.dtype === 'float32' ? '' : `.to(torch::${CPP_DTYPE[s.dtype]})`}` };
  });
  const py = pythonSnippet(out, example.map((e) => e.py).join(', '), rt);
  const cpp = cppSnippet(out, example.map((e) => e.cpp).join(', '), rt);
  return (
    <section>
      <h2>Export</h2>
      <NeedsModel>
        <p className="hint">One <code>.pt</code> holding the compiled code, the weights and the metadata: any PyTorch process loads it like any TorchScript model. It is verified against PyTorch before it is written. </p>
        <div className="row">
          <input className="grow" value={exportPath} onChange={(e) => set({ exportPath: e.target.value, ...(refusedPath ? { exportJob: undefined } : {}) })} aria-label="Export path" placeholder={project?.defaults.export_path ?? '/path/to/model.tvm.pt'} />
          <button className="primary" data-testid="export-button" disabled={running || (!specs && !chosen)} onClick={() => void exportModel()}>
            {running ? 'Exporting…' : 'Export (Ctrl/Cmd+E)'}
          </button>
        </div>
        <fieldset className="export-mode" data-testid="export-mode">
          <legend>Build to export</legend>
          {builds.map((b) => (
            <label key={b.key} data-testid={`export-choice-${b.key}`}>
              <input type="radio" name="export-build" checked={chosen?.key === b.key} onChange={() => set({ buildChoice: b.key })} /> <b>{describeBuild(b.result.build)}</b> <span className="hint">({buildSource(b.key)}; {buildFacts(b)})</span>
              {!b.current && <span className="warn"> made for other inputs or another target</span>}
            </label>
          ))}
          <label data-testid="export-choice-new">
            <input type="radio" name="export-build" checked={!chosen} onChange={() => set({ buildChoice: 'new' })} /> A new untuned build for the inputs and target on screen
          </label>
          <p className="hint" data-testid="export-kind">
            {chosen
              ? `Exports build ${chosen.result.build.id} as it was verified and measured: its package is copied byte for byte, nothing is imported or built again.`
              : `Untuned build, placement auto: library kernels (oneDNN, MKL) where they exist, TVM's default schedules elsewhere. It is compiled and verified now, then written.${builds.some((b) => b.result.build.tuned) ? '' : ' Tune this model first (Tune page) to export a tuned build.'}`}
          </p>
        </fieldset>
        {project && (
          <p className="hint" data-testid="export-default">
            Default: <code>{project.defaults.export_path}</code> (this model's project folder).{' '}
            {exportPath.trim() !== project.defaults.export_path && <button className="link" onClick={() => set({ exportPath: project.defaults.export_path })}>Use the default</button>}
          </p>
        )}
        {!specs && <p className="warn">Fix the <button className="link" onClick={() => go('inputs')}>input specs</button> first.</p>}
        <JobStatus jobId={exportJob} what="Export" quietSuccess explain={(e) => (PATH_REFUSALS.has(e.code) ? <ExportRefusal error={e} path={exportPath.trim()} defaultPath={project?.defaults.export_path} /> : null)} />
        {exported && !exported.files.exported ? (
          <div className="error-box refusal" role="alert" data-testid="export-skipped">
            <p>
              <b>Nothing was written.</b> {(exported.export_skipped ?? 'The build was not exported.').replace(/ ?\(?[Pp]ass --export-unverified.*$| Pass --accept-edge-mismatch.*$/, '')}
            </p>
            <p className="hint">
              {exported.verification.skipped
                ? 'Export anyway only to run it on a machine with that CPU, and verify it there before serving it.'
                : exported.verification.ok
                  ? 'Export anyway only if you accept that difference: the model will not compute what PyTorch computes for such inputs.'
                  : 'Export anyway only to investigate: this build does not compute what PyTorch computes.'}
            </p>
            <div className="row">
              <button className="danger" data-testid="export-anyway" onClick={() => void exportModel(exported.verification.ok ? { accept_edge_mismatch: true } : { export_unverified: true })}>
                Export anyway
              </button>
            </div>
            <details>
              <summary>Verification of the build</summary>
              <ResultTables r={exported} />
            </details>
          </div>
        ) : exported ? (
          <>
            <p className="ok copy-row" data-testid="export-done">
              Wrote <code>{out}</code> <CopyButton text={out} label="Copy path" />
            </p>
            <p data-testid="export-build">Build: <b>{exported.build ? describeBuild(exported.build) : 'unnamed'}</b> <span className="hint">({buildLabel(exported)})</span></p>
            <div className="snippets">
              <div>
                <div className="snippet-head"><h3>Python</h3><CopyButton text={py} /></div>
                <pre className="code" data-testid="python-snippet">{py}</pre>
              </div>
              <div>
                <div className="snippet-head"><h3>C++ (libtorch)</h3><CopyButton text={cpp} /></div>
                <pre className="code" data-testid="cpp-snippet">{cpp}</pre>
              </div>
            </div>
            <details>
              <summary>Verification of the exported build</summary>
              <ResultTables r={exported} />
            </details>
          </>
        ) : (
          !running && !refusedPath && <Empty title="Nothing exported yet"><p>Choose where to write the <code>.pt</code> (by default this model's project folder) and press Export; then benchmark it against the original on the Benchmark page.</p></Empty>
        )}
      </NeedsModel>
    </section>
  );
}
