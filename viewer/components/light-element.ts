import { LitElement } from 'lit';

/**
 * The console's elements render into the light DOM: one same-origin stylesheet (app.css) styles
 * them all, which a strict CSP allows without inline styles, and uPlot's own CSS reaches its charts.
 */
export class LightElement extends LitElement {
  protected override createRenderRoot(): HTMLElement {
    return this;
  }
}
