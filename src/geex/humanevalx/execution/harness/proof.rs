// geex: proof that this test function ran to the end (see geex/humanevalx/execution/proof.py). Items private
// to the function's body: the program cannot name them. A .preinit_array entry (run before every
// .init_array constructor of the program) reads one line of stdin; the guard writes it to the report
// descriptor when the function returns without panicking. exit(), abort and panic hooks never get
// there. Raw system calls: a program that defines its own read/write never sees the secret.
#[allow(dead_code, non_upper_case_globals, non_snake_case, unused_unsafe, static_mut_refs)]
mod __geex_proof {
    static mut SECRET: [u8; 128] = [0; 128];
    static mut LEN: usize = 0;
    static mut FD: i64 = -1;
    #[used]
    #[link_section = ".preinit_array"]
    static PREINIT: extern "C" fn(i32, *const *const u8, *const *const u8) = read_secret;
    #[cfg(target_arch = "x86_64")]
    unsafe fn sys(nr: i64, a: i64, b: i64, c: i64) -> i64 {
        let ret: i64;
        ::core::arch::asm!("syscall", inlateout("rax") nr => ret, in("rdi") a, in("rsi") b, in("rdx") c,
                           lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }
    #[cfg(target_arch = "aarch64")]
    unsafe fn sys(nr: i64, a: i64, b: i64, c: i64) -> i64 {
        let ret: i64;
        ::core::arch::asm!("svc 0", in("x8") nr, inlateout("x0") a => ret, in("x1") b, in("x2") c, options(nostack));
        ret
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    unsafe fn sys(nr: i64, a: i64, b: i64, c: i64) -> i64 {
        extern "C" {
            fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
            fn write(fd: i32, buf: *const u8, n: usize) -> isize;
        }
        if nr == READ { read(a as i32, b as *mut u8, c as usize) as i64 } else { write(a as i32, b as *const u8, c as usize) as i64 }
    }
    #[cfg(target_arch = "aarch64")]
    const READ: i64 = 63;
    #[cfg(target_arch = "aarch64")]
    const WRITE: i64 = 64;
    #[cfg(not(target_arch = "aarch64"))]
    const READ: i64 = 0;
    #[cfg(not(target_arch = "aarch64"))]
    const WRITE: i64 = 1;
    extern "C" fn read_secret(_argc: i32, _argv: *const *const u8, envp: *const *const u8) {
        unsafe {
            let key = b"GEEX_PROOF_FD=";
            let mut e = envp;
            while !e.is_null() && !(*e).is_null() {
                let s = *e;
                let mut i = 0;
                while i < key.len() && *s.add(i) == key[i] {
                    i += 1;
                }
                if i == key.len() {
                    let mut fd: i64 = 0;
                    let mut p = s.add(i);
                    while (*p).is_ascii_digit() {
                        fd = fd * 10 + (*p - b'0') as i64;
                        p = p.add(1);
                    }
                    FD = fd;
                    break;
                }
                e = e.add(1);
            }
            if FD < 0 {
                return;
            }
            let mut c: u8 = 0;
            while LEN < 128 && sys(READ, 0, &mut c as *mut u8 as i64, 1) == 1 && c != b'\n' {
                SECRET[LEN] = c;
                LEN += 1;
            }
        }
    }
    pub(super) struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            if ::std::thread::panicking() {
                return;
            }
            unsafe {
                if FD >= 0 && LEN > 0 {
                    sys(WRITE, FD, ::core::ptr::addr_of!(SECRET) as i64, LEN as i64);
                }
            }
        }
    }
}
let __geex_proof_guard = __geex_proof::Guard;
