// Microphone capture: the context's samples, averaged down to 16 kHz, as 16-bit PCM messages.
class PcmDownsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;  // sampleRate: the AudioContext's (a global here)
    this.acc = 0; this.count = 0; this.phase = 0;
    this.out = new Int16Array(1600); this.fill = 0;  // 100 ms per message
  }
  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let mono = 0;
      for (const channel of channels) mono += channel[i];
      this.acc += mono / channels.length; this.count += 1; this.phase += 1;
      if (this.phase >= this.ratio) {  // one 16 kHz sample: the mean of the input samples it covers
        this.phase -= this.ratio;
        const value = Math.max(-1, Math.min(1, this.acc / this.count));
        this.out[this.fill++] = Math.round(value * 32767);
        this.acc = 0; this.count = 0;
        if (this.fill === this.out.length) {
          this.port.postMessage(this.out.slice().buffer, []);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor('pcm-downsampler', PcmDownsampler);
