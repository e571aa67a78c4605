// Clang thread-safety annotations: which mutex guards a field, which a
// function needs held or must not hold. Checked by clang's -Wthread-safety
// (tools/check-threads, run by `make test`); under g++ they expand to nothing.
// See https://clang.llvm.org/docs/ThreadSafetyAnalysis.html, and base/mutex.h
// for the annotated Mutex they are used with.
#pragma once

#if defined(__clang__)
#define PAMPA_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PAMPA_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are capabilities (mutexes), named `x` in messages.
#define CAPABILITY(x) PAMPA_THREAD_ANNOTATION(capability(x))
// On a class: an RAII object that holds a capability for its lifetime.
#define SCOPED_CAPABILITY PAMPA_THREAD_ANNOTATION(scoped_lockable)
// On a field: read or written only with mutex x held.
#define GUARDED_BY(x) PAMPA_THREAD_ANNOTATION(guarded_by(x))
// On a pointer field: what it points to is read or written only with x held.
#define PT_GUARDED_BY(x) PAMPA_THREAD_ANNOTATION(pt_guarded_by(x))
// On a function: its callers hold the mutexes named.
#define REQUIRES(...) PAMPA_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// On a function: its callers do not hold the mutexes named (it takes them).
#define EXCLUDES(...) PAMPA_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it returns holding the mutexes named (none: `this`).
#define ACQUIRE(...) PAMPA_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
// On a function: it returns having released the mutexes named (none: `this`).
#define RELEASE(...) PAMPA_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// On a function: it holds the mutex on return iff it returned the first argument.
#define TRY_ACQUIRE(...) PAMPA_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// On a function: the analysis takes the mutex as held after the call (checked at run time, if at all).
#define ASSERT_CAPABILITY(x) PAMPA_THREAD_ANNOTATION(assert_capability(x))
// On a function: it returns (a reference to) mutex x.
#define RETURN_CAPABILITY(x) PAMPA_THREAD_ANNOTATION(lock_returned(x))
// On a function: not analysed. For code the analysis cannot follow; say why next to it.
#define NO_THREAD_SAFETY_ANALYSIS PAMPA_THREAD_ANNOTATION(no_thread_safety_analysis)
