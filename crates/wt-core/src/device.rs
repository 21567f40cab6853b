//! Device selection by name, for examples, benchmarks and tests: the same model code runs on
//! whichever backend a device belongs to.

// NdArray is deprecated in Burn 0.22 but still a supported CPU backend here.
#![allow(deprecated)]

use burn::tensor::Device;

/// The backends this build was compiled with, in the order `--device` lists them.
pub fn built_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// Parses `flex`, `ndarray`, `wgpu` or `cuda[:N]` into a device (without autodiff).
///
/// Errors name the backends this build has when the requested one was not compiled in.
pub fn parse_device(name: &str) -> Result<Device, String> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (
            k,
            Some(
                i.parse::<usize>()
                    .map_err(|_| format!("device `{name}`: `{i}` is not a device index"))?,
            ),
        ),
        None => (name, None),
    };
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    let _ = index; // only GPU backends take an index
    let missing = || {
        format!(
            "device `{name}`: this build has no `{kind}` backend (built: {}); rebuild with `--features {kind}`",
            built_backends().join(", ")
        )
    };
    match kind {
        "flex" => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[allow(unreachable_code)]
            Err(missing())
        }
        "ndarray" => {
            #[cfg(feature = "ndarray")]
            return Ok(Device::ndarray());
            #[allow(unreachable_code)]
            Err(missing())
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            return Ok(match index {
                None => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
                Some(i) => Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i)),
            });
            #[allow(unreachable_code)]
            Err(missing())
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(index.unwrap_or(0)));
            #[allow(unreachable_code)]
            Err(missing())
        }
        _ => Err(format!(
            "unknown device `{name}`: expected one of flex, ndarray, wgpu, cuda[:N] (built: {})",
            built_backends().join(", ")
        )),
    }
}

/// Whether a wgpu adapter can run a small kernel here, probed once per process. Errors inside
/// wgpu/CubeCL surface as panics, so the probe runs under `catch_unwind`; where it fails, the
/// panic's message is printed once. (It does not swap the panic hook: tests run in parallel
/// threads, and a hook swapped by one would silence, or keep silencing, the others' failures.)
#[cfg(feature = "wgpu")]
pub fn wgpu_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let d = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
            let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &d);
            t.sum().into_scalar::<f32>() == 3.0
        })
        .unwrap_or(false)
    })
}

/// Serialises the tests of one process that draw from the devices' random streams: Burn seeds
/// one global stream per backend, so a test that seeds and then compares two draws fails when
/// another test draws in between. Every such test holds this guard for its whole body.
/// (Test support: this crate's tests and, with the `test-util` feature, other crates'.)
#[cfg(any(test, feature = "test-util"))]
pub fn device_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Devices that tests run on: every CPU backend built, plus wgpu when built and an adapter
/// works. With `WT_REQUIRE_WGPU=1` (set by CI) a missing adapter is an error, not a skip.
/// (Test support, as [`device_test_lock`].)
#[cfg(any(test, feature = "test-util"))]
pub fn test_devices() -> Vec<(&'static str, Device)> {
    let mut v = Vec::new();
    #[cfg(feature = "flex")]
    v.push(("flex", Device::flex()));
    #[cfg(feature = "ndarray")]
    v.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "wgpu")]
    {
        if wgpu_works() {
            v.push((
                "wgpu",
                Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            ));
        } else if std::env::var("WT_REQUIRE_WGPU").as_deref() == Ok("1") {
            panic!("WT_REQUIRE_WGPU=1 but no wgpu adapter works (install mesa-vulkan-drivers)");
        } else {
            eprintln!("wt: wgpu built but no adapter found; wgpu checks skipped");
        }
    }
    v
}
