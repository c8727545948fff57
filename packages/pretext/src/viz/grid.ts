// Captioned image grids as PNG, composed with sharp: the pictures `pretext show` writes.
import sharp, { type OverlayOptions } from 'sharp';
import { noGrad, tidy, type Tensor } from '@pretext/torch';
import { escapeXml } from './svg.js';

export interface GridOptions {
  /** Panels per row. */
  columns: number;
  /** Displayed side of each panel in pixels (small images are upscaled, nearest neighbour). */
  panelSize?: number;
  captionHeight?: number;
  title?: string;
}

/** Splits text into lines of at most `width` characters at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

/** Converts N x C x H x W floats in [0, 1] to N RGB uint8 HWC buffers. */
export function toRgbBytes(panels: Tensor): { data: Uint8Array; height: number; width: number }[] {
  return noGrad(() =>
    tidy(() => {
      const [n, c, h, w] = panels.shape;
      const rgb = c === 1 ? panels.expand([n, 3, h, w]) : panels;
      const bytes = rgb.clamp(0, 1).mul(255).round().toDtype('uint8').permute([0, 2, 3, 1]).contiguous().toTypedArray() as Uint8Array;
      return Array.from({ length: n }, (_, i) => ({ data: bytes.subarray(i * h * w * 3, (i + 1) * h * w * 3), height: h, width: w }));
    }),
  );
}

/** Writes panels (N x C x H x W in [0, 1]) as a captioned grid PNG. */
export async function writeGrid(path: string, panels: Tensor, captions: string[], options: GridOptions): Promise<void> {
  const images = toRgbBytes(panels);
  const size = options.panelSize ?? 96;
  const captionHeight = options.captionHeight ?? (captions.some(Boolean) ? 18 : 0);
  const gap = 4;
  const columns = Math.min(options.columns, images.length);
  const titleLines = options.title ? wrap(options.title, Math.max(20, Math.floor((columns * (size + gap)) / 9))) : [];
  const titleHeight = titleLines.length ? 8 + 18 * titleLines.length : 0;
  const rows = Math.ceil(images.length / columns);
  const width = columns * (size + gap) + gap;
  const height = titleHeight + rows * (size + captionHeight + gap) + gap;
  const layers: OverlayOptions[] = [];
  for (let i = 0; i < images.length; i++) {
    const { data, height: h, width: w } = images[i];
    const left = gap + (i % columns) * (size + gap);
    const top = titleHeight + gap + Math.floor(i / columns) * (size + captionHeight + gap);
    const panel = await sharp(Buffer.from(data), { raw: { width: w, height: h, channels: 3 } })
      .resize(size, size, { kernel: 'nearest', fit: 'fill' })
      .png()
      .toBuffer();
    layers.push({ input: panel, left, top });
  }
  const texts = captions.map((caption, i) => {
    const x = gap + (i % columns) * (size + gap) + size / 2;
    const y = titleHeight + gap + Math.floor(i / columns) * (size + captionHeight + gap) + size + 13;
    const color = caption.includes('✗') ? '#c62828' : caption.includes('✓') ? '#2e7d32' : '#222';
    return `<text x="${x}" y="${y}" font-size="11" text-anchor="middle" fill="${color}">${escapeXml(caption)}</text>`;
  });
  titleLines.forEach((line, i) =>
    texts.push(`<text x="${gap + 2}" y="${18 + 18 * i}" font-size="14" font-weight="bold" fill="#111">${escapeXml(line)}</text>`),
  );
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">${texts.join('')}</svg>`;
  layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toFile(path);
}
