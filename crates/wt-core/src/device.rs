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

/// The device names [`parse_device`] takes, for error messages and `--help`.
pub const DEVICE_NAMES: &str =
    "flex, ndarray, wgpu[:discrete:N|:integrated:N|:virtual:N|:cpu|:N], cuda[:N]";

/// Parses a device name into a device (without autodiff):
///
/// | name | device |
/// |---|---|
/// | `flex`, `ndarray` | the CPU backends |
/// | `wgpu` | wgpu's default adapter (the most powerful; `CUBECL_WGPU_DEFAULT_DEVICE` overrides) |
/// | `wgpu:discrete:N`, `wgpu:N` | the `N`-th discrete GPU |
/// | `wgpu:integrated:N`, `wgpu:virtual:N` | the `N`-th integrated / virtual GPU |
/// | `wgpu:cpu` | a CPU adapter (a software driver such as Mesa's lavapipe) |
/// | `cuda`, `cuda:N` | the `N`-th CUDA device |
///
/// Two names over the same adapter (`wgpu` and `wgpu:cpu` where the software driver is the only
/// adapter) are two devices: tensors move between them. Errors name the backends this build has
/// when the requested one was not compiled in.
pub fn parse_device(name: &str) -> Result<Device, String> {
    let (kind, rest) = match name.split_once(':') {
        Some((k, r)) => (k, Some(r)),
        None => (name, None),
    };
    let index = |text: &str| {
        text.parse::<usize>()
            .map_err(|_| format!("device `{name}`: `{text}` is not a device index"))
    };
    let missing = || {
        format!(
            "device `{name}`: this build has no `{kind}` backend (built: {}); rebuild with `--features {kind}`",
            built_backends().join(", ")
        )
    };
    match kind {
        "flex" | "ndarray" if rest.is_some() => Err(format!(
            "device `{name}`: `{kind}` takes no index (the CPU backends have one device each)"
        )),
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
            let kind = wgpu_kind(name, rest)?;
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(kind));
            #[allow(unreachable_code)]
            {
                let _ = kind;
                Err(missing())
            }
        }
        "cuda" => {
            let index = rest.map(index).transpose()?.unwrap_or(0);
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(index));
            #[allow(unreachable_code)]
            {
                let _ = index;
                Err(missing())
            }
        }
        _ => Err(format!(
            "unknown device `{name}`: expected one of {DEVICE_NAMES} (built: {})",
            built_backends().join(", ")
        )),
    }
}

/// The wgpu adapter kind of `wgpu[:rest]`.
fn wgpu_kind(name: &str, rest: Option<&str>) -> Result<burn::tensor::DeviceKind, String> {
    use burn::tensor::DeviceKind;
    let index = |text: &str| {
        text.parse::<usize>().map_err(|_| {
            format!("device `{name}`: `{text}` is not an adapter index (expected {DEVICE_NAMES})")
        })
    };
    let Some(rest) = rest else {
        return Ok(DeviceKind::DefaultDevice);
    };
    let (kind, n) = match rest.split_once(':') {
        Some((k, n)) => (k, Some(n)),
        None => (rest, None),
    };
    // The adapter index after a kind, `0` when left out.
    let nth = || n.map(index).transpose().map(|i| i.unwrap_or(0));
    match kind {
        "cpu" if n.is_none() => Ok(DeviceKind::Cpu),
        "discrete" => Ok(DeviceKind::DiscreteGpu(nth()?)),
        "integrated" => Ok(DeviceKind::IntegratedGpu(nth()?)),
        "virtual" => Ok(DeviceKind::VirtualGpu(nth()?)),
        i if n.is_none() && i.chars().all(|c| c.is_ascii_digit()) => {
            Ok(DeviceKind::DiscreteGpu(index(i)?))
        }
        _ => Err(format!(
            "device `{name}`: unknown wgpu adapter `{rest}` (expected {DEVICE_NAMES})"
        )),
    }
}

/// One wgpu adapter as the graphics API reports it.
#[cfg(feature = "wgpu")]
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterReport {
    /// The adapter's name (`NVIDIA H100 PCIe`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// The graphics API: `Vulkan`, `Metal`, `Dx12`, `Gl`, `BrowserWebGpu`.
    pub backend: String,
    /// The driver's name (`NVIDIA`, `llvmpipe`).
    pub driver: String,
    /// The driver's version text.
    pub driver_info: String,
    /// PCI vendor id (`0x10de` NVIDIA, `0x1002` AMD, `0x8086` Intel, `0x10005` Mesa).
    pub vendor: u32,
}

#[cfg(feature = "wgpu")]
impl AdapterReport {
    /// A software rasteriser running on the CPU (Mesa's lavapipe / llvmpipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }
}

/// Every adapter wgpu finds on every graphics API it was built for, in wgpu's order.
#[cfg(feature = "wgpu")]
pub fn wgpu_adapters() -> Vec<AdapterReport> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterReport {
                name: info.name,
                device_type: format!("{:?}", info.device_type),
                backend: format!("{:?}", info.backend),
                driver: info.driver,
                driver_info: info.driver_info,
                vendor: info.vendor,
            }
        })
        .collect()
}

/// The name of the part a device runs on, as its backend reports it (opens the device); `None`
/// where the backend reports none (the CPU backends).
pub fn device_name(device: &Device) -> Option<String> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    return device.identity().map(|i| i.name);
    #[allow(unreachable_code)]
    {
        let _ = device;
        None
    }
}

/// Opens `device` and checks it with a one-value round trip (`1 + 2`). Errors inside a driver
/// surface as panics in wgpu/CubeCL, so the check runs under `catch_unwind` and returns the
/// panic's message. (It does not swap the panic hook: tests run in parallel threads, and a hook
/// swapped by one would silence, or keep silencing, the others' failures.)
pub fn check_device(device: &Device) -> Result<(), String> {
    let probe = device.clone();
    let sum = std::panic::catch_unwind(move || {
        burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &probe)
            .sum()
            .into_scalar::<f32>()
    });
    match sum {
        Ok(3.0) => Ok(()),
        Ok(v) => Err(format!("it computed 1 + 2 = {v}: its driver is broken")),
        Err(panic) => Err((panic.downcast_ref::<String>().cloned())
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "it panicked with no message".into())),
    }
}

/// Whether wgpu's default adapter passes [`check_device`] here, probed once per process.
#[cfg(feature = "wgpu")]
pub fn wgpu_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        check_device(&Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)).is_ok()
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

#[cfg(test)]
mod tests {
    use super::wgpu_kind;
    use burn::tensor::DeviceKind;

    #[test]
    fn wgpu_names_parse_to_their_adapter_kinds() {
        let kind = |rest| wgpu_kind("wgpu:…", rest);
        assert_eq!(kind(None), Ok(DeviceKind::DefaultDevice));
        assert_eq!(kind(Some("cpu")), Ok(DeviceKind::Cpu));
        assert_eq!(kind(Some("2")), Ok(DeviceKind::DiscreteGpu(2)));
        assert_eq!(kind(Some("discrete")), Ok(DeviceKind::DiscreteGpu(0)));
        assert_eq!(kind(Some("discrete:1")), Ok(DeviceKind::DiscreteGpu(1)));
        assert_eq!(kind(Some("integrated:3")), Ok(DeviceKind::IntegratedGpu(3)));
        assert_eq!(kind(Some("virtual:0")), Ok(DeviceKind::VirtualGpu(0)));
        for bad in ["cpu:1", "discrete:x", "gpu", "integrated:-1", ""] {
            let err = kind(Some(bad)).unwrap_err();
            assert!(
                err.contains("expected flex, ndarray, wgpu["),
                "{bad}: {err}"
            );
        }
    }
}
