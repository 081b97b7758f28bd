/* libtorchtvm_cpuid_mask.so: run a whole process as if this CPU had at most the ISA of
 * TORCHTVM_MAX_CPU_ISA (avx2 | avx512), for every library in it, not only the ones with an ISA
 * switch. Loaded with LD_PRELOAD (torchtvm.common.isa_cap.masked_environment()).
 *
 * ONNX Runtime's MLAS and OpenVINO's own kernels pick their code from CPUID and have no cap, so an
 * AVX-512 machine cannot otherwise measure them as an AVX2 desktop runs them. Linux can make CPUID
 * fault (ARCH_SET_CPUID, where the CPU or hypervisor offers "cpuid_fault"): each CPUID then raises
 * SIGSEGV, and the handler here runs the real instruction, clears the feature bits above the cap
 * and steps over it. The setting is per thread and inherited by threads and forks, so it is set in
 * a constructor, before any library starts a thread; execve resets it, and LD_PRELOAD in the
 * environment sets it again in the child.
 *
 * Every other SIGSEGV goes to the handler the program installed: sigaction()/signal() for SIGSEGV
 * are intercepted so that Python's faulthandler, for one, still reports a crash. glibc's own string
 * functions pick their code before any constructor runs; masked_environment() sets GLIBC_TUNABLES
 * for those. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

enum { kNone = 0, kAvx2 = 1, kAvx512 = 2 };

/* Read from Python (ctypes) to report that the mask is in effect and how often it acted. */
int torchtvm_cpuid_mask_level = kNone;
volatile unsigned long torchtvm_cpuid_mask_count = 0;

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static struct sigaction program_action; /* the program's SIGSEGV handler (SIG_DFL at first) */

static int set_cpuid_enabled(int on) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, on); }

/* The feature bits (Intel SDM vol. 2A, CPUID leaves 7 and 0xD) a CPU of each level does not have. */
static void mask(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
  const unsigned amx = (1u << 22) | (1u << 24) | (1u << 25); /* EDX: amx-bf16, amx-tile, amx-int8 */
  if (leaf == 7 && sub == 0) {
    *d &= ~amx;
    if (torchtvm_cpuid_mask_level == kAvx2) {
      /* EBX: avx512 f, dq, ifma, pf, er, cd, bw, vl */
      *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
      /* ECX: avx512 vbmi, vbmi2, vnni, bitalg, vpopcntdq */
      *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
      /* EDX: avx512 4vnniw, 4fmaps, vp2intersect, fp16 */
      *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
    }
  } else if (leaf == 7 && sub == 1) {
    *a &= ~(1u << 21); /* amx-fp16 */
    if (torchtvm_cpuid_mask_level == kAvx2) {
      /* EAX: avx-vnni, avx512-bf16, avx-ifma; EDX: avx-vnni-int8, avx-ne-convert, avx-vnni-int16
       * (the AVX2 desktops the cap stands for lack them, as TVM's target under the cap does) */
      *a &= ~((1u << 4) | (1u << 5) | (1u << 23));
      *d &= ~((1u << 4) | (1u << 5) | (1u << 10));
    }
  } else if (leaf == 0xd && sub == 0 && torchtvm_cpuid_mask_level == kAvx2) {
    *a &= ~((1u << 5) | (1u << 6) | (1u << 7)); /* no opmask / zmm state to save */
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = (ucontext_t *)context;
  const unsigned char *ip = (const unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
  /* A faulting CPUID is a general-protection fault (SI_KERNEL) at the instruction itself. */
  if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
    unsigned leaf = (unsigned)uc->uc_mcontext.gregs[REG_RAX], sub = (unsigned)uc->uc_mcontext.gregs[REG_RCX];
    unsigned a, b, c, d;
    set_cpuid_enabled(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid_enabled(0);
    mask(leaf, sub, &a, &b, &c, &d);
    uc->uc_mcontext.gregs[REG_RAX] = a;
    uc->uc_mcontext.gregs[REG_RBX] = b;
    uc->uc_mcontext.gregs[REG_RCX] = c;
    uc->uc_mcontext.gregs[REG_RDX] = d;
    uc->uc_mcontext.gregs[REG_RIP] += 2;
    __atomic_add_fetch(&torchtvm_cpuid_mask_count, 1, __ATOMIC_RELAXED);
    return;
  }
  /* Not ours: hand it to the program's handler, or die of it as the program would have. */
  if (program_action.sa_flags & SA_SIGINFO) {
    program_action.sa_sigaction(sig, info, context);
  } else if (program_action.sa_handler != SIG_DFL && program_action.sa_handler != SIG_IGN) {
    program_action.sa_handler(sig);
  } else {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL); /* the faulting instruction runs again and kills */
  }
}

int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact) {
  if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  if (signum != SIGSEGV || torchtvm_cpuid_mask_level == kNone) return real_sigaction(signum, act, oldact);
  if (oldact) *oldact = program_action;
  if (act) program_action = *act;
  return 0;
}

sighandler_t signal(int signum, sighandler_t handler) {
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  if (sigaction(signum, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

__attribute__((constructor)) static void install(void) {
  const char *cap = getenv("TORCHTVM_MAX_CPU_ISA");
  int level = !cap ? kNone : !strcasecmp(cap, "avx2") ? kAvx2 : !strcasecmp(cap, "avx512") ? kAvx512 : kNone;
  if (level == kNone) return;
  real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  program_action.sa_handler = SIG_DFL;
  struct sigaction ours;
  memset(&ours, 0, sizeof ours);
  ours.sa_sigaction = on_segv;
  ours.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&ours.sa_mask);
  if (real_sigaction(SIGSEGV, &ours, NULL) != 0) return;
  if (set_cpuid_enabled(0) != 0) { /* no CPUID faulting here: the process runs unmasked */
    real_sigaction(SIGSEGV, &program_action, NULL);
    return;
  }
  torchtvm_cpuid_mask_level = level;
}
