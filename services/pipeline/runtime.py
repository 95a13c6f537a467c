"""What a service needs at hand: settings, topology and the clients, built once per app."""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import Settings
from .auth import PushTokenVerifier, push_verifier
from .blobs import BlobStore
from .bus import Bus
from .jobstore import JobStore, JobStoreBase
from .neardup import FirestoreNearDuplicates, NearDuplicateIndex
from .topology import Topology, load_topology


@dataclass
class Runtime:
    settings: Settings
    topology: Topology
    bus: Bus
    jobs: JobStoreBase
    blobs: BlobStore
    verifier: PushTokenVerifier | None
    near_duplicates: NearDuplicateIndex | None = None  # each client's pHashes (neardup.py); built by build()

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        topology = load_topology(settings.topology_file)
        verifier = push_verifier(settings)
        return cls(
            settings=settings,
            topology=topology,
            bus=Bus(settings.project, topology, settings.schemas_dir, settings.publish_timeout_seconds),
            jobs=JobStore(settings.project, settings.job_ttl_days, settings.video_segment_record_ttl_days),
            blobs=BlobStore(settings.project),
            verifier=verifier,
            near_duplicates=FirestoreNearDuplicates(settings.project),
        )
