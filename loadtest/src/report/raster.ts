import { glyphHeightPixels, glyphPixels, glyphWidthPixels } from './pixel-font.js';

/** An RGB pixel buffer with the few drawing operations the charts need. */
export class Raster {
  readonly pixels: Uint8Array;

  constructor(
    readonly widthPixels: number,
    readonly heightPixels: number,
  ) {
    this.pixels = new Uint8Array(widthPixels * heightPixels * 3).fill(255);
  }

  setPixel(x: number, y: number, color: string): void {
    const column = Math.round(x);
    const row = Math.round(y);
    if (column < 0 || row < 0 || column >= this.widthPixels || row >= this.heightPixels) return;
    const [red, green, blue] = parseColor(color);
    const offset = (row * this.widthPixels + column) * 3;
    this.pixels[offset] = red;
    this.pixels[offset + 1] = green;
    this.pixels[offset + 2] = blue;
  }

  fillRect(x: number, y: number, width: number, height: number, color: string): void {
    for (let row = Math.round(y); row < Math.round(y + height); row++) {
      for (let column = Math.round(x); column < Math.round(x + width); column++)
        this.setPixel(column, row, color);
    }
  }

  /**
   * Mixes `color` into a rectangle at `opacity` (0 to 1) over what is already drawn, for
   * translucent shading that keeps whatever lies underneath visible.
   */
  blendRect(x: number, y: number, width: number, height: number, color: string, opacity: number): void {
    const [red, green, blue] = parseColor(color);
    const alpha = Math.min(Math.max(opacity, 0), 1);
    const rowEnd = Math.min(Math.round(y + height), this.heightPixels);
    const columnEnd = Math.min(Math.round(x + width), this.widthPixels);
    for (let row = Math.max(Math.round(y), 0); row < rowEnd; row++) {
      for (let column = Math.max(Math.round(x), 0); column < columnEnd; column++) {
        const offset = (row * this.widthPixels + column) * 3;
        const mix = (channel: number, value: number): void => {
          const under = this.pixels[offset + channel] as number;
          this.pixels[offset + channel] = Math.round(under + (value - under) * alpha);
        };
        mix(0, red);
        mix(1, green);
        mix(2, blue);
      }
    }
  }

  /** A line `thickness` pixels wide; every `dashPixels` pixels on, then off, when dashed. */
  drawLine(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    color: string,
    thickness = 1,
    dashPixels = 0,
  ): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const half = Math.floor(thickness / 2);
    for (let step = 0; step <= steps; step++) {
      if (dashPixels > 0 && Math.floor(step / dashPixels) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * step) / steps;
      const y = y0 + ((y1 - y0) * step) / steps;
      this.fillRect(Math.round(x) - half, Math.round(y) - half, thickness, thickness, color);
    }
  }

  /** Text in the pixel font, `scale` pixels a font pixel; returns its width. */
  drawText(x: number, y: number, text: string, color: string, scale = 2): number {
    let cursor = x;
    for (const character of text) {
      for (const [column, row] of glyphPixels(character)) {
        this.fillRect(cursor + column * scale, y + row * scale, scale, scale, color);
      }
      cursor += (glyphWidthPixels + 1) * scale;
    }
    return cursor - x;
  }

  static textWidth(text: string, scale = 2): number {
    return text.length * (glyphWidthPixels + 1) * scale;
  }

  static textHeight(scale = 2): number {
    return glyphHeightPixels * scale;
  }
}

function parseColor(color: string): [number, number, number] {
  const hex = /^#([0-9a-f]{6})$/i.exec(color)?.[1] ?? '000000';
  return [parseInt(hex.slice(0, 2), 16), parseInt(hex.slice(2, 4), 16), parseInt(hex.slice(4, 6), 16)];
}
