// The console's entry point (scripts/build-viewer.mjs bundles from here): the stylesheet and the shell.
import './styles/app.css';
import './components/sdc-app.js';
