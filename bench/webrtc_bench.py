"""What one browser call costs the bridge per 20 ms, stage by stage, and how fast it starts.

Run: ``python -m bench.webrtc_bench`` (``--quick`` for a fast, noisier run).

Per-frame CPU (best of several rounds, µs per 20 ms frame) of each stage a browser call's audio
goes through in the bridge: aiortc's Opus decoder (48 kHz stereo out), our one resampling of
the caller's audio to the engine's format (libswresample through PyAV, 48 kHz stereo → 8 kHz
μ-law or 16/24 kHz PCM), the agent track building a frame, and aiortc's Opus encoder (which
resamples the agent's 8–24 kHz audio to 48 kHz itself). Their sum × 50 is the WebRTC leg's CPU
per call-second, to set beside a phone carrier's (≈4.5 ms per call-second for the whole bridge).

Set-up: two aiortc peers on loopback (the bridge's :class:`BrowserPeer` answering a
browser-like offer): offer → answer (ICE gathering, DTLS certificate), and answer → the first
frame of agent audio decoded by the caller.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import statistics
import time
import timeit

import aioice.ice
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame, AudioResampler

from bench.audio_bench import speechlike
from bridge.audio.g711 import pcm16_to_ulaw
from bridge.carriers.webrtc.peer import AgentTrack, BrowserPeer

FORMATS = ("pcmu", "pcm16/16000", "pcm16/24000")


def speechlike_samples(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """:func:`bench.audio_bench.speechlike` as samples, interleaved over ``channels``."""
    mono = np.frombuffer(speechlike(rate, seconds), dtype="<i2")
    return np.repeat(mono, channels) if channels > 1 else mono


def frame(samples: np.ndarray, rate: int, layout: str, pts: int) -> AudioFrame:
    out = AudioFrame(format="s16", layout=layout, samples=rate // 50)
    out.planes[0].update(samples.tobytes())
    out.sample_rate, out.pts, out.time_base = rate, pts, fractions.Fraction(1, rate)
    return out


def best_us(fn: object, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6  # type: ignore[arg-type]


def per_frame(number: int, repeat: int) -> dict[str, float]:
    results: dict[str, float] = {}
    stereo48 = speechlike_samples(48000, 1.0, channels=2)
    frames48 = [
        frame(stereo48[i * 1920 : (i + 1) * 1920], 48000, "stereo", i * 960) for i in range(50)
    ]
    encoder = OpusEncoder()
    packets = [encoder.encode(f)[0][0] for f in frames48]
    decoder = OpusDecoder()
    it = iter(range(10**9))

    def decode() -> None:
        i = next(it)
        decoder.decode(JitterFrame(data=packets[i % 50], timestamp=i * 960))

    results["opus decode (caller audio)"] = best_us(decode, number, repeat)
    for fmt in FORMATS:
        rate = 8000 if fmt == "pcmu" else int(fmt.partition("/")[2])
        resampler = AudioResampler(format="s16", layout="mono", rate=rate)
        encode = pcm16_to_ulaw if fmt == "pcmu" else None

        def resample(resampler: AudioResampler = resampler, encode: object = encode) -> None:
            for out in resampler.resample(frames48[next(it) % 50]):
                pcm = out.to_ndarray().tobytes()
                if encode is not None:
                    encode(pcm)  # type: ignore[operator]

        results[f"resample 48 kHz stereo → {fmt}"] = best_us(resample, number, repeat)

    async def track_and_encode() -> None:
        for fmt in FORMATS:
            results.update(agent_side(fmt, number, repeat))

    asyncio.run(track_and_encode())
    return results


def agent_side(fmt: str, number: int, repeat: int) -> dict[str, float]:
    """The agent track's frame and aiortc's Opus encoding of it (call in a running loop)."""
    rate = 8000 if fmt == "pcmu" else int(fmt.partition("/")[2])
    payload = bytes(160) if fmt == "pcmu" else speechlike(rate, 0.02)
    now = [0.0]
    track = AgentTrack(fmt, lambda name: None, clock=lambda: now[0])
    frames: list[AudioFrame] = []

    def build() -> None:
        track.push(payload)
        now[0] += 0.02
        frames.append(track._frame(payload))  # the frame recv() hands out

    built_us = best_us(build, number, repeat)
    opus = OpusEncoder()
    built = frames[:50]
    count = iter(range(10**9))

    def encode() -> None:
        opus.encode(built[next(count) % len(built)])

    return {
        f"agent track frame ({fmt})": built_us,
        f"opus encode from {fmt} (agent audio)": best_us(encode, number, repeat),
    }


async def first_frame_time(caller: RTCPeerConnection) -> asyncio.Future[float]:
    """A future set to when the caller decodes its first frame of the bridge's audio."""
    got_audio: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def first(track: MediaStreamTrack) -> None:
        await track.recv()
        if not got_audio.done():
            got_audio.set_result(time.perf_counter())

    caller.on("track", lambda track: asyncio.get_running_loop().create_task(first(track)))
    return got_audio


async def setup_times(calls: int) -> list[tuple[float, float]]:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]
    times = []
    for n in range(calls):
        caller = RTCPeerConnection()
        caller.addTransceiver("audio", direction="sendrecv")
        got_audio = await first_frame_time(caller)

        await caller.setLocalDescription(await caller.createOffer())
        t0 = time.perf_counter()
        peer = BrowserPeer(call_id=f"bench{n}", audio_format="pcmu", parameters={})
        answer = await peer.answer(caller.localDescription.sdp)
        t1 = time.perf_counter()
        await caller.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        peer.track.push(bytes(160) * 10)
        first = await asyncio.wait_for(got_audio, 10)
        times.append(((t1 - t0) * 1000, (first - t1) * 1000))
        await caller.close()
        await peer.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    number, repeat = (200, 3) if args.quick else (1000, 7)
    results = per_frame(number, repeat)
    width = max(map(len, results))
    print(f"{'stage':<{width}}  µs per 20 ms frame")
    for name, us in results.items():
        print(f"{name:<{width}}  {us:8.1f}")
    for fmt in FORMATS:
        leg = sum(v for k, v in results.items() if k.startswith("opus decode") or fmt in k)
        cpu = leg * 50 / 1000
        print(
            f"WebRTC leg, engine {fmt}: {leg:.1f} µs per frame = {cpu:.2f} ms CPU per call-second"
        )
    times = asyncio.run(setup_times(3 if args.quick else 10))
    for name, values in (
        ("offer → answer", [t[0] for t in times]),
        ("answer → first agent frame at the caller", [t[1] for t in times]),
    ):
        median, low, high = statistics.median(values), min(values), max(values)
        print(f"{name}: median {median:.1f} ms (min {low:.1f}, max {high:.1f})")


if __name__ == "__main__":
    main()
