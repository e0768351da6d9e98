//! A blocking CRI v1 client over containerd's unix socket, as kubelet speaks it: tonic on a
//! current-thread tokio runtime owned by the client, so test code stays synchronous.

use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub struct Cri {
    rt: tokio::runtime::Runtime,
    pub rs: RuntimeServiceClient<Channel>,
    pub is: ImageServiceClient<Channel>,
}

pub type CriResult<T> = Result<T, tonic::Status>;

impl Cri {
    /// Connects to the CRI socket at `sock`.
    pub fn connect(sock: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let sock = sock.to_path_buf();
        let channel = rt
            .block_on(async move {
                Endpoint::try_from("http://[::]:50051")?
                    .connect_timeout(Duration::from_secs(5))
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(sock).await?,
                            ))
                        }
                    }))
                    .await
            })
            .map_err(|e| e.to_string())?;
        Ok(Cri {
            rt,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
        })
    }

    pub fn version(&mut self) -> CriResult<cri::VersionResponse> {
        let rs = &mut self.rs;
        self.rt
            .block_on(rs.version(cri::VersionRequest::default()))
            .map(tonic::Response::into_inner)
    }

    pub fn image_status(&mut self, image: &str) -> CriResult<Option<cri::Image>> {
        let is = &mut self.is;
        let req = cri::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        self.rt
            .block_on(is.image_status(req))
            .map(|r| r.into_inner().image)
    }

    pub fn run_pod(&mut self, config: &cri::PodSandboxConfig, handler: &str) -> CriResult<String> {
        let rs = &mut self.rs;
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        self.rt
            .block_on(rs.run_pod_sandbox(req))
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    pub fn pod_status(&mut self, id: &str) -> CriResult<cri::PodSandboxStatusResponse> {
        let rs = &mut self.rs;
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        self.rt
            .block_on(rs.pod_sandbox_status(req))
            .map(tonic::Response::into_inner)
    }

    pub fn stop_pod(&mut self, id: &str) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.rt.block_on(rs.stop_pod_sandbox(req)).map(|_| ())
    }

    pub fn remove_pod(&mut self, id: &str) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.rt.block_on(rs.remove_pod_sandbox(req)).map(|_| ())
    }

    pub fn pods(&mut self) -> CriResult<Vec<cri::PodSandbox>> {
        let rs = &mut self.rs;
        self.rt
            .block_on(rs.list_pod_sandbox(cri::ListPodSandboxRequest::default()))
            .map(|r| r.into_inner().items)
    }

    pub fn create(
        &mut self,
        pod: &str,
        config: &cri::ContainerConfig,
        pod_config: &cri::PodSandboxConfig,
    ) -> CriResult<String> {
        let rs = &mut self.rs;
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(pod_config.clone()),
        };
        self.rt
            .block_on(rs.create_container(req))
            .map(|r| r.into_inner().container_id)
    }

    pub fn start(&mut self, id: &str) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::StartContainerRequest {
            container_id: id.to_string(),
        };
        self.rt.block_on(rs.start_container(req)).map(|_| ())
    }

    pub fn stop(&mut self, id: &str, timeout: i64) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.rt.block_on(rs.stop_container(req)).map(|_| ())
    }

    pub fn remove(&mut self, id: &str) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.rt.block_on(rs.remove_container(req)).map(|_| ())
    }

    pub fn containers(&mut self) -> CriResult<Vec<cri::Container>> {
        let rs = &mut self.rs;
        self.rt
            .block_on(rs.list_containers(cri::ListContainersRequest::default()))
            .map(|r| r.into_inner().containers)
    }

    pub fn status(&mut self, id: &str) -> CriResult<cri::ContainerStatus> {
        let rs = &mut self.rs;
        let req = cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        self.rt
            .block_on(rs.container_status(req))
            .map(|r| r.into_inner().status.unwrap_or_default())
    }

    /// ContainerStatus's verbose info (containerd's: pid, runtime spec...).
    pub fn status_info(&mut self, id: &str) -> CriResult<serde_json::Value> {
        let rs = &mut self.rs;
        let req = cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        self.rt.block_on(rs.container_status(req)).map(|r| {
            r.into_inner()
                .info
                .get("info")
                .and_then(|i| serde_json::from_str(i).ok())
                .unwrap_or_default()
        })
    }

    pub fn stats(&mut self, id: &str) -> CriResult<cri::ContainerStats> {
        let rs = &mut self.rs;
        let req = cri::ContainerStatsRequest {
            container_id: id.to_string(),
        };
        self.rt
            .block_on(rs.container_stats(req))
            .map(|r| r.into_inner().stats.unwrap_or_default())
    }

    pub fn pod_stats(&mut self, id: &str) -> CriResult<cri::PodSandboxStats> {
        let rs = &mut self.rs;
        let req = cri::PodSandboxStatsRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.rt
            .block_on(rs.pod_sandbox_stats(req))
            .map(|r| r.into_inner().stats.unwrap_or_default())
    }

    pub fn update(&mut self, id: &str, linux: cri::LinuxContainerResources) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        self.rt
            .block_on(rs.update_container_resources(req))
            .map(|_| ())
    }

    pub fn reopen_log(&mut self, id: &str) -> CriResult<()> {
        let rs = &mut self.rs;
        let req = cri::ReopenContainerLogRequest {
            container_id: id.to_string(),
        };
        self.rt.block_on(rs.reopen_container_log(req)).map(|_| ())
    }

    /// ExecSync with a 10 s timeout: (exit code, stdout, stderr).
    pub fn exec(&mut self, id: &str, cmd: &[&str]) -> CriResult<(i32, String, String)> {
        self.exec_timeout(id, cmd, 10)
    }

    /// ExecSync with a timeout in seconds (kubelet's probe timeoutSeconds).
    pub fn exec_timeout(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> CriResult<(i32, String, String)> {
        let rs = &mut self.rs;
        let req = cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        };
        self.rt.block_on(rs.exec_sync(req)).map(|r| {
            let r = r.into_inner();
            (
                r.exit_code,
                String::from_utf8_lossy(&r.stdout).into_owned(),
                String::from_utf8_lossy(&r.stderr).into_owned(),
            )
        })
    }
}

pub fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}
